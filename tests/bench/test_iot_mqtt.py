"""
The pure helpers of bench/iot_mqtt.py: the MQTT 3.1.1 packets its device
client writes are the ones Crossbar's own parser (the hub's MQTT listener)
reads back, its reader splits CONNACK/PUBACK packets at any byte boundary,
and a phase's readings and CPU cost are counted by their send-time window.
"""

from crossbar.bridge.mqtt.protocol import MQTTParser
from twisted.trial.unittest import SynchronousTestCase

from bench import iot_mqtt


class PacketTests(SynchronousTestCase):

    def test_remaining_length(self):
        """The specification's examples: 0, 127, 128, 16,383, 16,384 and the largest length."""
        self.assertEqual(iot_mqtt.remaining_length(0), b"\x00")
        self.assertEqual(iot_mqtt.remaining_length(127), b"\x7f")
        self.assertEqual(iot_mqtt.remaining_length(128), b"\x80\x01")
        self.assertEqual(iot_mqtt.remaining_length(16383), b"\xff\x7f")
        self.assertEqual(iot_mqtt.remaining_length(16384), b"\x80\x80\x01")
        self.assertEqual(iot_mqtt.remaining_length(268435455), b"\xff\xff\xff\x7f")
        self.assertRaises(ValueError, iot_mqtt.remaining_length, 268435456)

    def test_crossbar_parses_connect_and_publishes(self):
        """CONNECT then a QoS 1 and a QoS 0 PUBLISH (one with a 200-byte payload) parse as sent."""
        big = b'{"value": "' + b"x" * 200 + b'"}'
        data = (iot_mqtt.connect_packet("bench-dev", "key-1", "s3cret", keep_alive=30)
                + iot_mqtt.publish_packet("iot/device/dev", b'{"value": 1.5}', packet_id=7)
                + iot_mqtt.publish_packet("iot/device/dev", big))
        events = MQTTParser().data_received(data)
        self.assertEqual([type(event).__name__ for event in events], ["Connect", "Publish", "Publish"])
        connect, first, second = events
        self.assertEqual((connect.client_id, connect.username, connect.password, connect.keep_alive),
                         ("bench-dev", "key-1", "s3cret", 30))
        self.assertTrue(connect.flags.clean_session)
        self.assertEqual((first.topic_name, first.qos_level, first.packet_identifier, first.payload),
                         ("iot/device/dev", 1, 7, b'{"value": 1.5}'))
        self.assertEqual((second.qos_level, second.payload), (0, big))

    def test_split_packets_at_every_boundary(self):
        """A CONNACK and two PUBACKs cut anywhere: the complete packets, the rest kept for the next read."""
        data = b"\x20\x02\x00\x00" + b"\x40\x02\x00\x01" + b"\x40\x02\x00\x02"
        for cut in range(len(data) + 1):
            first, rest = iot_mqtt.split_packets(data[:cut])
            second, rest = iot_mqtt.split_packets(rest + data[cut:])
            self.assertEqual(first + second, [(2, 0, b"\x00\x00"), (4, 0, b"\x00\x01"), (4, 0, b"\x00\x02")])
            self.assertEqual(rest, b"")


class PhaseTests(SynchronousTestCase):

    def test_phase_counts_by_send_time(self):
        """Samples sent in [start, end) count, with receipt minus send time; others belong to other phases."""
        samples = [(999.0, 1001.0), (1000.0, 1002.5), (1500.5, 1510.5), (2000.0, 2001.0)]
        delivered, latencies = iot_mqtt.phase_counts(samples, 1000, 2000)
        self.assertEqual((delivered, latencies), (2, [2.5, 10.0]))

    def test_cost(self):
        """CPU per reading in us; the MQTT/HTTP ratio, None without a figure for either side."""
        self.assertEqual(iot_mqtt.per_reading(0.5, 2000), 250.0)
        self.assertEqual(iot_mqtt.per_reading(0.5, 0), 500000.0)
        self.assertEqual(iot_mqtt.cost_ratio(250.0, 500.0), 0.5)
        self.assertIsNone(iot_mqtt.cost_ratio(250.0, 0))
        self.assertIsNone(iot_mqtt.cost_ratio(None, 500.0))
