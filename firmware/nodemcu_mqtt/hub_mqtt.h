// What the NodeMcu MQTT sketch sends, kept free of the ESP8266 core so that
// tests/iot/test_firmware.py compiles it on a PC and checks it against the
// hub's own rules (components.mqtt): the device's one topic, the reading's
// payload, and when a reading goes out (a change beyond the dead band, or
// the unchanged value again after a quiet period, so the hub's history and
// iot.sources see the device alive).
#ifndef HUB_MQTT_H
#define HUB_MQTT_H

#include <stdio.h>

namespace hub_mqtt {

// "iot/device/<name>" into out; the length, or -1 when it does not fit
inline int topic(const char *device, char *out, int size) {
  int length = snprintf(out, (size_t)size, "iot/device/%s", device);
  return (length < 0 || length >= size) ? -1 : length;
}

// {"value":<value>} into out; the length, or -1 when it does not fit
inline int payload(long value, char *out, int size) {
  int length = snprintf(out, (size_t)size, "{\"value\":%ld}", value);
  return (length < 0 || length >= size) ? -1 : length;
}

// ESP8266 ADC 0..1023 (some boards report 1024) -> 0..100 %, rounded to the nearest
inline int to_percent(int raw) {
  if (raw >= 1023) return 100;
  return raw <= 0 ? 0 : (int)(((long)raw * 200 + 1023) / 2046);
}

// Report a value when it left [last - band, last + band], or when refresh_ms passed since the last report.
class ReportPolicy {
 public:
  ReportPolicy(int band, unsigned long refresh_ms) : band_(band), refresh_ms_(refresh_ms) {}

  // true when value should be published now (then remembered as reported at now_ms)
  bool offer(int value, unsigned long now_ms) {
    bool moved = !reported_ || value < last_ - band_ || value > last_ + band_;
    bool quiet = reported_ && now_ms - at_ms_ >= refresh_ms_;  // unsigned: millis() wrapping is fine
    if (!moved && !quiet) return false;
    last_ = value;
    at_ms_ = now_ms;
    reported_ = true;
    return true;
  }

  // a failed publish: offer the same value again next time
  void forget() { reported_ = false; }

 private:
  int band_;
  unsigned long refresh_ms_;
  int last_ = 0;
  unsigned long at_ms_ = 0;
  bool reported_ = false;
};

}  // namespace hub_mqtt

#endif
