// Arduino (Uno, Nano, Leonardo, ...): a potentiometer on A0 reported over
// the USB serial port at 9600 baud, one decimal line per change beyond the
// dead band. The hub's serial reader (SERIAL_URL=/dev/ttyACM0) publishes the
// lines on iot.serial.reader. See README.md for wiring and flashing.
#include "potentiometer.h"

#ifndef BAUD_RATE
#define BAUD_RATE 9600
#endif
#ifndef DEAD_BAND
#define DEAD_BAND 2  // ADC steps (0..1023); filters the ±1 flicker of a resting wiper
#endif
#ifndef READ_INTERVAL_MS
#define READ_INTERVAL_MS 100
#endif

PotentiometerReporter reporter(A0, DEAD_BAND);

void setup() {
  Serial.begin(BAUD_RATE);
}

void loop() {
  reporter.poll(Serial);
  delay(READ_INTERVAL_MS);
}
