// The potentiometer reporter of the Arduino sketch: read A0, write the
// reading as one decimal line ("512\r\n") on the serial port when it moved by
// more than the dead band since the last line written. Written against the
// Arduino API only, so it also compiles on a PC against firmware/host/Arduino.h.
#ifndef POTENTIOMETER_H
#define POTENTIOMETER_H

#include <Arduino.h>

class PotentiometerReporter {
 public:
  // band: a reading is written when |reading - last written| > band.
  // The first reading after reset is always written (the hub's initial state).
  PotentiometerReporter(uint8_t pin, int band) : pin_(pin), band_(band), last_(0), has_last_(false) {}

  // One read; returns true when a line was written.
  bool poll(Print &out) {
    int value = analogRead(pin_);
    if (has_last_ && !moved(value)) {
      return false;
    }
    out.println(value);
    last_ = value;
    has_last_ = true;
    return true;
  }

  int last() const { return last_; }

 private:
  bool moved(int value) const {
    int delta = value - last_;
    if (delta < 0) delta = -delta;
    return delta > band_;
  }

  uint8_t pin_;
  int band_;
  int last_;
  bool has_last_;
};

#endif
