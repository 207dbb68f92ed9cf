// Copy to settings.h (ignored by git) and fill in. Never commit real secrets.
#define WIFI_SSID "my-wifi"
#define WIFI_PASSWORD "my-wifi-password"

#define HUB_HOST "hub.example.org"  // the MQTT listener's TLS server name and address
#define HUB_MQTT_PORT 8883          // the hub's MQTT_PORT (TLS: MQTT_TLS_CERT/MQTT_TLS_KEY on the hub)

// what `reactive-hub device add nodemcu-1` printed for this device (each device its own)
#define DEVICE_NAME "nodemcu-1"
#define DEVICE_KEY "this device's DEVICE_KEY"
#define DEVICE_SECRET "this device's DEVICE_SECRET"

// Either the CA that signed the hub's certificate (preferred: survives certificate renewals) ...
#define HUB_CA_PEM R"PEM(
-----BEGIN CERTIFICATE-----
...
-----END CERTIFICATE-----
)PEM"
// ... or the certificate's SHA-1 fingerprint (remove HUB_CA_PEM above):
// #define HUB_FINGERPRINT "AA BB CC DD EE FF 00 11 22 33 44 55 66 77 88 99 AA BB CC DD"
