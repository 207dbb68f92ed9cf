// Runs the firmware logic on a PC against the stand-in Arduino.h:
//   host_test potentiometer V1 V2 ...   run the Arduino sketch's setup() and one loop() per reading,
//                                       print what it wrote on the serial port
//   host_test request HOST PATH KEY SECRET EPOCH SEQ NONCE DEVICE VALUE
//                                       print the NodeMcu's request bytes for these inputs
//   host_test percent R1 R2 ...         print percent(raw) and whether the dead band lets it through
//   host_test selftest                  SHA-256 / HMAC-SHA256 known answers; prints "ok"
//   host_test mqtt DEVICE RAW@MS ...    the MQTT sketch: its topic, then per read (raw value at millis MS)
//                                       "<percent> <1 published, 0 not> <payload when published>"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../arduino_potentiometer/arduino_potentiometer.ino"
#include "../nodemcu_publisher/hub_publish.h"
#include "../nodemcu_mqtt/hub_mqtt.h"

static int check(const char *name, const char *got, const char *expected) {
  if (strcmp(got, expected) == 0) return 0;
  fprintf(stderr, "%s: got %s, expected %s\n", name, got, expected);
  return 1;
}

static void hex(const uint8_t *digest, char out[65]) {
  for (int i = 0; i < 32; ++i) snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static int selftest() {
  int failures = 0;
  uint8_t digest[32];
  char text[65];
  hub::Sha256 empty;
  empty.finish(digest);
  hex(digest, text);
  failures += check("sha256('')", text, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hub::Sha256 abc;
  abc.update("abc");
  abc.finish(digest);
  hex(digest, text);
  failures += check("sha256(abc)", text, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hub::Sha256 million;
  for (int i = 0; i < 1000000; ++i) million.update((const uint8_t *)"a", 1);
  million.finish(digest);
  hex(digest, text);
  failures += check("sha256(a*1e6)", text, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // RFC 4231 test case 2
  hub::HmacSha256 jefe((const uint8_t *)"Jefe", 4);
  jefe.update("what do ya want ");
  jefe.update("for nothing?");
  jefe.finish(digest);
  hex(digest, text);
  failures += check("hmac(Jefe)", text, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: a key longer than the block
  uint8_t long_key[131];
  memset(long_key, 0xaa, sizeof(long_key));
  hub::HmacSha256 large(long_key, sizeof(long_key));
  large.update("Test Using Larger Than Block-Size Key - Hash Key First");
  large.finish(digest);
  hex(digest, text);
  failures += check("hmac(131 bytes key)", text, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  char encoded[8];
  hub::base64url((const uint8_t *)"\xfb\xff", 2, encoded);
  failures += check("base64url", encoded, "-_8=");
  if (failures == 0) printf("ok\n");
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *mode = argv[1];
  if (strcmp(mode, "selftest") == 0) return selftest();
  if (strcmp(mode, "potentiometer") == 0) {
    for (int i = 2; i < argc; ++i) host::analog_values().push_back(atoi(argv[i]));
    setup();
    for (int i = 2; i < argc; ++i) loop();
    printf("baud=%lu elapsed_ms=%lu\n", Serial.baud_rate, millis());
    fwrite(Serial.output.data(), 1, Serial.output.size(), stdout);
    return 0;
  }
  if (strcmp(mode, "percent") == 0) {
    hub::PercentChange change(1);
    for (int i = 2; i < argc; ++i) {
      int value = hub::percent(atoi(argv[i]));
      printf("%d %d\n", value, change.offer(value) ? 1 : 0);
    }
    return 0;
  }
  if (strcmp(mode, "request") == 0 && argc == 11) {
    hub::Request request;
    request.host = argv[2];
    request.path = argv[3];
    request.key = argv[4];
    request.secret = argv[5];
    request.timestamp = (time_t)atoll(argv[6]);
    request.seq = strtoul(argv[7], nullptr, 10);
    request.nonce = strtoul(argv[8], nullptr, 10);
    request.device = argv[9];
    request.value = atol(argv[10]);
    char raw[1024];
    int length = hub::build_request(request, raw, sizeof(raw));
    if (length < 0) return 3;
    fwrite(raw, 1, (size_t)length, stdout);
    return 0;
  }
  if (strcmp(mode, "mqtt") == 0 && argc >= 3) {
    char topic[80];
    if (hub_mqtt::topic(argv[2], topic, sizeof(topic)) < 0) return 3;
    printf("%s\n", topic);
    hub_mqtt::ReportPolicy policy(1, 20000);
    for (int i = 3; i < argc; ++i) {
      int value = hub_mqtt::to_percent(atoi(argv[i]));
      const char *at = strchr(argv[i], '@');
      bool publish = policy.offer(value, at ? strtoul(at + 1, nullptr, 10) : 0);
      char body[32];
      if (hub_mqtt::payload(value, body, sizeof(body)) < 0) return 3;
      printf("%d %d %s\n", value, publish ? 1 : 0, publish ? body : "-");
    }
    return 0;
  }
  return 2;
}
