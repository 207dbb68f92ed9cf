// NodeMcu (ESP8266): a potentiometer on A0 posted as a percentage to the
// hub's HTTP bridge, POST https://<hub>/publish, signed with this device's own
// key and secret (from the hub's device registry), whenever it moves by more
// than the dead band. The hub publishes it on iot.device.<DEVICE_NAME>. See
// README.md for wiring, settings and flashing.
//
// Build with the ESP8266 Arduino core (3.x): Board "NodeMCU 1.0 (ESP-12E Module)".
#include <ESP8266WiFi.h>
#include <WiFiClientSecure.h>
#include <time.h>

#include "hub_publish.h"
#include "settings.h"  // copy settings.example.h to settings.h and fill it in (never commit it)
#if !defined(DEVICE_NAME) && defined(DEVICE_ID)
#define DEVICE_NAME DEVICE_ID  // settings.h of an older sketch
#endif

static const int DEAD_BAND = 1;            // percent points, as in the seed sketch
static const unsigned long READ_MS = 200;  // between reads
static const time_t VALID_TIME = 1700000000;  // NTP has answered once the clock is past this

hub::PercentChange change(DEAD_BAND);
unsigned long seq = 0;
BearSSL::WiFiClientSecure tls;
#ifdef HUB_CA_PEM
BearSSL::X509List trust(HUB_CA_PEM);
#endif

void connectWifi() {
  if (WiFi.status() == WL_CONNECTED) return;
  WiFi.mode(WIFI_STA);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  Serial.print("Wi-Fi");
  while (WiFi.status() != WL_CONNECTED) {
    delay(500);
    Serial.print('.');
  }
  Serial.print(" connected, address ");
  Serial.println(WiFi.localIP());
}

void waitForTime() {
  // the bridge refuses requests whose timestamp is more than DEVICE_TIMESTAMP_LIMIT seconds off
  configTime(0, 0, "pool.ntp.org", "time.nist.gov");
  Serial.print("NTP");
  while (time(nullptr) < VALID_TIME) {
    delay(500);
    Serial.print('.');
  }
  Serial.println(" ok");
}

bool post(int value) {
  hub::Request request;
  request.host = HUB_HOST_HEADER;
  request.path = "/publish";
  request.key = DEVICE_KEY;
  request.secret = DEVICE_SECRET;
  request.timestamp = time(nullptr);
  request.seq = ++seq;
  request.nonce = (unsigned long)(RANDOM_REG32 & 0x7fffffff);
  request.device = DEVICE_NAME;
  request.value = value;
  static char raw[640];
  int length = hub::build_request(request, raw, sizeof(raw));
  if (length < 0) {
    Serial.println("request too long");
    return false;
  }
  if (!tls.connect(HUB_HOST, HUB_PORT)) {
    Serial.println("connection failed (certificate or network)");
    return false;
  }
  tls.write((const uint8_t *)raw, length);
  String status = tls.readStringUntil('\n');  // "HTTP/1.1 200 OK"
  tls.stop();
  Serial.print(value);
  Serial.print("% -> ");
  Serial.println(status);
  return status.startsWith("HTTP/1.1 200");
}

void setup() {
  Serial.begin(115200);
  connectWifi();
  waitForTime();
#if defined(HUB_CA_PEM)
  tls.setTrustAnchors(&trust);  // full chain check against the CA
#elif defined(HUB_FINGERPRINT)
  tls.setFingerprint(HUB_FINGERPRINT);  // pinned SHA-1 fingerprint of the hub's certificate
#else
#error "define HUB_CA_PEM or HUB_FINGERPRINT in settings.h: the device never talks to an unchecked server"
#endif
  tls.setTimeout(5000);
}

void loop() {
  connectWifi();
  int value = hub::percent(analogRead(A0));
  if (change.offer(value) && !post(value)) {
    change.forget();  // try again on the next read
  }
  delay(READ_MS);
}
