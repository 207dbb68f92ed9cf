// NodeMcu (ESP8266): a potentiometer on A0 published as a percentage over
// MQTT 3.1.1 to the hub's MQTT listener (MQTT_PORT, TLS), logged in with this
// device's own key (username) and secret (password) from the hub's device
// registry, on its one topic iot/device/<DEVICE_NAME>. The hub publishes each
// reading on iot.device.<DEVICE_NAME> with its own seq and ts, and marks the
// device offline when the connection drops without DISCONNECT (power or
// network gone: after 1.5 x KEEPALIVE_S). See README.md.
//
// Build with the ESP8266 Arduino core (3.x), Board "NodeMCU 1.0 (ESP-12E
// Module)", and the PubSubClient library (Nick O'Leary, 2.8).
#include <ESP8266WiFi.h>
#include <PubSubClient.h>
#include <WiFiClientSecure.h>

#include "hub_mqtt.h"
#include "settings.h"  // copy settings.example.h to settings.h and fill it in (never commit it)

static const int DEAD_BAND = 1;                 // percent points
static const unsigned long READ_MS = 200;       // between reads
// the same value again after this much quiet (below the hub's IOT_STALE_AFTER, 30 s)
static const unsigned long REFRESH_MS = 20000;
// the hub closes the connection (device offline) after 1.5 x this without a packet
static const uint16_t KEEPALIVE_S = 15;

hub_mqtt::ReportPolicy policy(DEAD_BAND, REFRESH_MS);
BearSSL::WiFiClientSecure tls;
PubSubClient mqtt(tls);
char topic[80];
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

void connectHub() {
  while (!mqtt.connected()) {
    connectWifi();
    // client id: the device name; username/password: the registry's key and secret (CONNACK 4 when wrong)
    if (mqtt.connect(DEVICE_NAME, DEVICE_KEY, DEVICE_SECRET)) {
      Serial.println("hub: connected");
      policy.forget();  // report the current value at once
      return;
    }
    Serial.print("hub: refused or unreachable, state ");
    Serial.println(mqtt.state());  // 4: bad key or secret (revoked? rotated? flash the new ones)
    delay(5000);
  }
}

void setup() {
  Serial.begin(115200);
  connectWifi();
  configTime(0, 0, "pool.ntp.org", "time.nist.gov");  // certificate validity needs the time
  while (time(nullptr) < 1700000000) delay(500);
#if defined(HUB_CA_PEM)
  tls.setTrustAnchors(&trust);  // full chain check against the CA
#elif defined(HUB_FINGERPRINT)
  tls.setFingerprint(HUB_FINGERPRINT);  // pinned SHA-1 fingerprint of the hub's certificate
#else
#error "define HUB_CA_PEM or HUB_FINGERPRINT in settings.h: the device never talks to an unchecked server"
#endif
  if (hub_mqtt::topic(DEVICE_NAME, topic, sizeof(topic)) < 0) {
    Serial.println("DEVICE_NAME too long");
  }
  mqtt.setServer(HUB_HOST, HUB_MQTT_PORT);
  mqtt.setKeepAlive(KEEPALIVE_S);
}

void loop() {
  connectHub();
  mqtt.loop();  // keep-alive pings
  int value = hub_mqtt::to_percent(analogRead(A0));
  if (policy.offer(value, millis())) {
    char body[32];
    int length = hub_mqtt::payload(value, body, sizeof(body));
    if (length < 0 || !mqtt.publish(topic, (const uint8_t *)body, (unsigned int)length, false)) {
      policy.forget();  // try again on the next read
    }
  }
  delay(READ_MS);
}
