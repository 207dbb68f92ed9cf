// What the NodeMcu sketch sends to the hub's HTTP bridge (POST /publish),
// with no dependency beyond the C library so it compiles on a PC too:
//
//   signature = base64url(HMAC-SHA256(secret, key | timestamp | seq | nonce | body))
//
// sent with key, timestamp, seq and nonce in the query string (Crossbar's
// signed-request scheme), and the percentage dead band of the seed sketch.
// components/iot/device_simulator.py builds the same bytes in Python; tests/iot/test_firmware.py
// compiles this header with g++ and compares the two.
#ifndef HUB_PUBLISH_H
#define HUB_PUBLISH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

namespace hub {

// ---- SHA-256 (FIPS 180-4) ------------------------------------------------

class Sha256 {
 public:
  Sha256() { reset(); }

  void reset() {
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(state_, initial, sizeof(state_));
    length_ = 0;
    used_ = 0;
  }

  void update(const uint8_t *data, size_t size) {
    for (size_t i = 0; i < size; ++i) {
      block_[used_++] = data[i];
      if (used_ == 64) {
        compress();
        used_ = 0;
      }
    }
    length_ += (uint64_t)size * 8;
  }

  void update(const char *text) { update((const uint8_t *)text, strlen(text)); }

  void finish(uint8_t digest[32]) {
    uint64_t bits = length_;
    uint8_t pad = 0x80;
    update(&pad, 1);
    uint8_t zero = 0;
    while (used_ != 56) update(&zero, 1);
    uint8_t size[8];
    for (int i = 0; i < 8; ++i) size[i] = (uint8_t)(bits >> (56 - 8 * i));
    update(size, 8);
    for (int i = 0; i < 8; ++i) {
      digest[4 * i] = (uint8_t)(state_[i] >> 24);
      digest[4 * i + 1] = (uint8_t)(state_[i] >> 16);
      digest[4 * i + 2] = (uint8_t)(state_[i] >> 8);
      digest[4 * i + 3] = (uint8_t)state_[i];
    }
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress() {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = ((uint32_t)block_[4 * i] << 24) | ((uint32_t)block_[4 * i + 1] << 16) |
             ((uint32_t)block_[4 * i + 2] << 8) | (uint32_t)block_[4 * i + 3];
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g; g = f; f = e; e = d + t1;
      d = c; c = b; b = a; a = t1 + t2;
    }
    state_[0] += a; state_[1] += b; state_[2] += c; state_[3] += d;
    state_[4] += e; state_[5] += f; state_[6] += g; state_[7] += h;
  }

  uint32_t state_[8];
  uint8_t block_[64];
  uint64_t length_;
  size_t used_;
};

// ---- HMAC-SHA256 (RFC 2104) over several parts -----------------------------

class HmacSha256 {
 public:
  HmacSha256(const uint8_t *key, size_t size) {
    uint8_t block[64];
    memset(block, 0, sizeof(block));
    if (size > 64) {
      Sha256 hashed;
      hashed.update(key, size);
      hashed.finish(block);
    } else {
      memcpy(block, key, size);
    }
    for (int i = 0; i < 64; ++i) {
      inner_pad_[i] = block[i] ^ 0x36;
      outer_pad_[i] = block[i] ^ 0x5c;
    }
    inner_.update(inner_pad_, 64);
  }

  void update(const uint8_t *data, size_t size) { inner_.update(data, size); }
  void update(const char *text) { inner_.update(text); }

  void finish(uint8_t mac[32]) {
    uint8_t inner_digest[32];
    inner_.finish(inner_digest);
    Sha256 outer;
    outer.update(outer_pad_, 64);
    outer.update(inner_digest, 32);
    outer.finish(mac);
  }

 private:
  Sha256 inner_;
  uint8_t inner_pad_[64];
  uint8_t outer_pad_[64];
};

// base64url with '=' padding, as Python's urlsafe_b64encode; returns the length written.
inline size_t base64url(const uint8_t *data, size_t size, char *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = 0;
  for (size_t i = 0; i < size; i += 3) {
    uint32_t chunk = (uint32_t)data[i] << 16;
    if (i + 1 < size) chunk |= (uint32_t)data[i + 1] << 8;
    if (i + 2 < size) chunk |= data[i + 2];
    out[n++] = alphabet[(chunk >> 18) & 63];
    out[n++] = alphabet[(chunk >> 12) & 63];
    out[n++] = i + 1 < size ? alphabet[(chunk >> 6) & 63] : '=';
    out[n++] = i + 2 < size ? alphabet[chunk & 63] : '=';
  }
  out[n] = '\0';
  return n;
}

// ---- the request ------------------------------------------------------------

// the hub publishes each registered device's readings on iot.device.<its name>
const char TOPIC_PREFIX[] = "iot.device.";

// "2026-11-29T04:33:21.000Z" (UTC, whole seconds: the bridge accepts a window around its clock)
inline void format_timestamp(time_t moment, char out[25]) {
  struct tm utc;
  gmtime_r(&moment, &utc);
  strftime(out, 25, "%Y-%m-%dT%H:%M:%S.000Z", &utc);
}

// {"topic":"iot.device.nodemcu-1","args":[{"value":42}]}
// device: the name it was registered under (python -m components.iot device add NAME: 1-64 letters, digits,
// _ or -); the hub refuses a topic of another device than the one whose key signed the request.
inline int format_body(char *out, size_t capacity, const char *device, long value) {
  return snprintf(out, capacity, "{\"topic\":\"%s%s\",\"args\":[{\"value\":%ld}]}", TOPIC_PREFIX, device, value);
}

// The bridge's signature of one request, base64url text (44 chars + NUL).
inline void sign(const char *secret, const char *key, const char *timestamp, const char *seq, const char *nonce,
                 const char *body, char out[45]) {
  HmacSha256 mac((const uint8_t *)secret, strlen(secret));
  mac.update(key);
  mac.update(timestamp);
  mac.update(seq);
  mac.update(nonce);
  mac.update(body);
  uint8_t digest[32];
  mac.finish(digest);
  base64url(digest, 32, out);
}

struct Request {
  const char *host;    // "hub.example.org" (with ":port" when not the default)
  const char *path;    // "/publish"
  const char *key;     // DEVICE_KEY of this device (from the registry)
  const char *secret;  // DEVICE_SECRET of this device
  time_t timestamp;    // UTC epoch seconds (from NTP)
  unsigned long seq;   // counts posts since boot
  unsigned long nonce; // random, below 2^31
  const char *device;  // DEVICE_NAME, the registered name: "nodemcu-1"
  long value;          // the percentage
};

// The whole HTTP/1.1 request into out; returns its length, or -1 when capacity is too small.
inline int build_request(const Request &r, char *out, size_t capacity) {
  char body[160];
  int body_length = format_body(body, sizeof(body), r.device, r.value);
  if (body_length < 0 || (size_t)body_length >= sizeof(body)) return -1;
  char stamp[25], seq[12], nonce[12], signature[45], quoted[64];
  format_timestamp(r.timestamp, stamp);
  snprintf(seq, sizeof(seq), "%lu", r.seq);
  snprintf(nonce, sizeof(nonce), "%lu", r.nonce);
  sign(r.secret, r.key, stamp, seq, nonce, body, signature);
  size_t q = 0;  // '=' is the only character of base64url that needs quoting in a query
  for (const char *c = signature; *c; ++c) {
    if (*c == '=') {
      memcpy(quoted + q, "%3D", 3);
      q += 3;
    } else {
      quoted[q++] = *c;
    }
  }
  quoted[q] = '\0';
  int length = snprintf(out, capacity,
                        "POST %s?key=%s&timestamp=%s&seq=%s&nonce=%s&signature=%s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %d\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "%s",
                        r.path, r.key, stamp, seq, nonce, quoted, r.host, body_length, body);
  if (length < 0 || (size_t)length >= capacity) return -1;
  return length;
}

// ---- the reading ----------------------------------------------------------------

// ESP8266 ADC 0..1023 (some boards report 1024) -> 0..100 %
inline int percent(int raw) {
  if (raw <= 0) return 0;
  long p = ((long)raw * 100 + 511) / 1023;
  return p > 100 ? 100 : (int)p;
}

// The seed's change filter: report when the percentage left [last - band, last + band].
class PercentChange {
 public:
  explicit PercentChange(int band) : band_(band), last_(0), has_last_(false) {}

  // true when value should be posted; remembers it as the last posted value
  bool offer(int value) {
    if (has_last_ && value >= last_ - band_ && value <= last_ + band_) return false;
    last_ = value;
    has_last_ = true;
    return true;
  }

  // a failed post: offer the same value again next time
  void forget() { has_last_ = false; }

 private:
  int band_;
  int last_;
  bool has_last_;
};

}  // namespace hub

#endif
