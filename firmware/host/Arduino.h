// A minimal stand-in for the Arduino core, enough to compile and run the
// firmware logic on a PC (tests/iot/test_firmware.py): Print/Serial writing to a
// string, analogRead fed from a list, delay/millis on a simulated clock.
#ifndef HOST_ARDUINO_H
#define HOST_ARDUINO_H

#include <stdint.h>
#include <stdlib.h>

#include <deque>
#include <string>

static const uint8_t A0 = 14;

class Print {
 public:
  virtual ~Print() {}
  virtual void write(const char *data, size_t size) = 0;
  void print(const char *text) { write(text, std::char_traits<char>::length(text)); }
  void print(long value) {
    std::string text = std::to_string(value);
    write(text.data(), text.size());
  }
  void println(long value) {
    print(value);
    print("\r\n");
  }
  void println(const char *text) {
    print(text);
    print("\r\n");
  }
};

class HardwareSerial : public Print {
 public:
  void begin(unsigned long baud) { baud_rate = baud; }
  void write(const char *data, size_t size) override { output.append(data, size); }
  unsigned long baud_rate = 0;
  std::string output;
};

namespace host {
inline std::deque<int> &analog_values() {
  static std::deque<int> values;
  return values;
}
inline unsigned long &now_ms() {
  static unsigned long now = 0;
  return now;
}
inline HardwareSerial &serial() {
  static HardwareSerial port;
  return port;
}
}  // namespace host

#define Serial (host::serial())

// the next scripted reading (the last one repeats; 0 when none was given)
inline int analogRead(uint8_t) {
  std::deque<int> &values = host::analog_values();
  if (values.empty()) return 0;
  int value = values.front();
  if (values.size() > 1) values.pop_front();
  return value;
}

inline void delay(unsigned long ms) { host::now_ms() += ms; }
inline unsigned long millis() { return host::now_ms(); }

#endif
