"""
MQTT device readings against the HTTP device path, in one run on one node.

One dev node with MQTT on a free port, ``DEVICE_RATE``/``DEVICE_BURST``
raised to 1000 (so that the per-device limit is not what is measured) and
100 registered devices. 100 subscribers stand in for browsers: WAMP
sessions (user role, JSON over WebSocket) in a separate Python process
(``--subscriber`` mode of this file), subscriber *i* subscribed to device
*i*'s topic ``iot.device.<name>`` (one dashboard per device: one delivery
per reading; a prefix subscription of every browser would be 100 deliveries
per reading, the fan-out bench's subject).

Drivers, in this process: the 100 devices over MQTT 3.1.1 (one TCP
connection each, a minimal Twisted client below, QoS 1, no in-flight
window), or over HTTP (``POST /publish`` signed with the device's key,
persistent connections, one request in flight per device). Each phase
sends a total rate (readings/s, round-robin over the
devices) for ``--seconds``; the phases go MQTT, HTTP, MQTT, ... per rate
(alternating which goes first per rate). A reading's value is its send time
(epoch ms), so a subscriber's receipt time minus the value is publish ->
receipt (one machine, one clock). Per phase: readings sent, acknowledged
(PUBACK / HTTP 2xx), stored in ``iot.history`` (paged per device after the
phase: the count check), delivered at the subscribers, p50/p99, and the
node's CPU (every process of the node) per stored reading.

    python bench/iot_mqtt.py [--devices 100] [--rates 100,500,1000] [--seconds 20] [--grace 5]

Writes bench/results/iot_mqtt.{md,json}.
"""

import argparse
import json
import os
import platform
import secrets
import struct
import sys
import time
from urllib.parse import urlencode

from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.iot import node_cpu_seconds  # noqa: E402

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
RAISED_RATE = "1000"


# --- MQTT 3.1.1 packets (pure) ----------------------------------------------------------------------

def remaining_length(size):
    """The MQTT variable-length encoding of ``size`` (0 to 268,435,455)."""
    if not 0 <= size <= 268435455:
        raise ValueError("remaining length out of range: {}".format(size))
    out = bytearray()
    while True:
        byte, size = size % 128, size // 128
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


def _text(value):
    data = value.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id, username, password, keep_alive=60):
    """CONNECT, protocol level 4, clean session, with user name and password."""
    body = _text("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keep_alive)
    body += _text(client_id) + _text(username) + _text(password)
    return bytes([CONNECT << 4]) + remaining_length(len(body)) + body


def publish_packet(topic, payload, packet_id=None):
    """PUBLISH of ``payload`` (bytes) on ``topic``: QoS 1 with ``packet_id``, else QoS 0."""
    body = _text(topic) + (struct.pack("!H", packet_id) if packet_id is not None else b"") + payload
    return bytes([(PUBLISH << 4) | (2 if packet_id is not None else 0)]) + remaining_length(len(body)) + body


def split_packets(buffer):
    """``(packets, rest)``: the complete ``(type, flags, body)`` packets at the start of ``buffer``."""
    packets, offset = [], 0
    while offset < len(buffer):
        size, shift, index = 0, 0, offset + 1
        while True:
            if index >= len(buffer):
                return packets, buffer[offset:]
            byte = buffer[index]
            size |= (byte & 0x7F) << shift
            shift, index = shift + 7, index + 1
            if not byte & 0x80:
                break
        if index + size > len(buffer):
            return packets, buffer[offset:]
        packets.append((buffer[offset] >> 4, buffer[offset] & 0x0F, buffer[index:index + size]))
        offset = index + size
    return packets, b""


def phase_counts(samples, start_ms, end_ms):
    """``(delivered, latencies ms)`` of the ``(value, received ms)`` samples with a value in the window."""
    latencies = [received - value for value, received in samples if start_ms <= value < end_ms]
    return len(latencies), latencies


def per_reading(cpu_s, readings):
    """Microseconds of ``cpu_s`` per reading (over at least one reading), 0.1 us precision."""
    return round(cpu_s * 1e6 / max(readings, 1), 1)


def cost_ratio(mqtt_us, http_us):
    """MQTT's node CPU per reading over HTTP's (None when either is missing or HTTP's is 0)."""
    if not mqtt_us or not http_us:
        return None
    return round(mqtt_us / http_us, 3)


# --- drivers ----------------------------------------------------------------------------------------

class MqttDevice(protocol.Protocol):
    """One device's MQTT connection: CONNECT, then QoS 1 PUBLISHes; counts CONNACK and PUBACKs."""

    def __init__(self, name, key, secret):
        self.name, self.key, self.secret = name, key, secret
        self.topic = "iot/device/" + name
        self.buffer = b""
        self.acked = 0
        self.packet_id = 0
        self.ready = defer.Deferred()

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.transport.write(connect_packet("bench-" + self.name, self.key, self.secret))

    def dataReceived(self, data):
        packets, self.buffer = split_packets(self.buffer + data)
        for kind, _, body in packets:
            if kind == PUBACK:
                self.acked += 1
            elif kind == CONNACK and not self.ready.called:
                if body[1:2] == b"\x00":
                    self.ready.callback(self)
                else:
                    self.ready.errback(RuntimeError("CONNACK {!r} for {}".format(body, self.name)))

    def send(self, value):
        self.packet_id = self.packet_id % 65535 + 1
        payload = json.dumps({"value": value}).encode()
        self.transport.write(publish_packet(self.topic, payload, self.packet_id))

    def close(self):
        self.transport.write(bytes([14 << 4, 0]))  # DISCONNECT
        self.transport.loseConnection()


class HttpDevices:
    """
    Signed ``POST /publish`` per reading over a persistent pool, one request in flight per device (a
    device's next reading waits in its queue until the previous one is answered); counts 2xx and failures.
    """

    def __init__(self, reactor, base, devices):
        import treq
        from twisted.web.client import HTTPConnectionPool
        self.treq = treq
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = len(devices)
        self.base = base
        self.devices = devices
        self.acked = self.failed = 0
        self.queues = [[] for _ in devices]
        self.busy = [False] * len(devices)

    def send(self, index, value):
        self.queues[index].append(value)
        if not self.busy[index]:
            self._next(index)

    def _next(self, index):
        if not self.queues[index]:
            self.busy[index] = False
            return
        self.busy[index] = True
        self._post(index, self.queues[index].pop(0))

    def _post(self, index, value):
        from components.iot import device_simulator, request_signing
        name, (key, secret) = self.devices[index]
        payload = device_simulator.body(name, value)
        stamp, nonce = request_signing.timestamp(), secrets.randbelow(2 ** 31)
        query = urlencode({"key": key, "timestamp": stamp, "seq": 1, "nonce": nonce,
                           "signature": request_signing.sign(secret, key, stamp, 1, nonce, payload)})
        answer = self.treq.post(self.base + "/publish?" + query, payload, pool=self.pool,
                                headers={b"Content-Type": [b"application/json"]})
        answer.addCallback(self._answered)
        answer.addErrback(self._failed)
        answer.addBoth(lambda _: self._next(index))

    def _answered(self, response):
        if 200 <= response.code < 300:
            self.acked += 1
        else:
            self.failed += 1
        return response.content()

    def _failed(self, failure):
        self.failed += 1


@defer.inlineCallbacks
def drive(reactor, send, count, rate, seconds):
    """Call ``send(device index, value)`` round-robin at ``rate``/s for ``seconds``; fire with the count."""
    start, sent = time.perf_counter(), [0]
    total = int(rate * seconds)

    def tick():
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent[0] < due:
            send(sent[0] % count, round(time.time() * 1000, 3))
            sent[0] += 1
        if sent[0] >= total:
            loop.stop()
    loop = task.LoopingCall(tick)
    loop.clock = reactor
    yield loop.start(0.005)
    return sent[0]


# --- subscribers (separate process) -----------------------------------------------------------------

@defer.inlineCallbacks
def subscriber_main(reactor, options):
    """``--subscriber``: one session per device topic; on a line on stdin print every sample as JSON."""
    from components.client.hub_client import HubClient
    from tests.support.clients import token
    names = options.names.split(",")
    samples = []
    clients = []

    def on_event(state):
        samples.append((state["value"], time.time() * 1000))

    for index, name in enumerate(names):
        ticket = token("browser-{}".format(index), "user", ttl=3600)
        client = HubClient(options.url, lambda ticket=ticket: ticket,
                           protocol_options={"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0})
        yield client.connect()
        yield client.session.subscribe(on_event, "iot.device." + name)
        clients.append(client)
    print(json.dumps({"ready": len(clients)}), flush=True)
    yield _read_line()
    print(json.dumps({"samples": samples}), flush=True)
    for client in clients:
        yield client.close()


def _read_line():
    from twisted.internet import threads
    return threads.deferToThread(sys.stdin.readline)


class SubscriberProcess(protocol.ProcessProtocol):
    """The subscriber process as seen from the driver: its JSON lines of stdout."""

    def __init__(self):
        self.output = b""
        self.lines = []
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        *lines, self.output = self.output.split(b"\n")
        self.lines += [json.loads(line) for line in lines if line.startswith(b"{")]

    def errReceived(self, data):
        sys.stderr.write(data.decode("utf-8", "replace"))

    def processEnded(self, reason):
        self.ended.callback(None)

    def message(self, key):
        return next((line[key] for line in self.lines if key in line), None)


# --- the run ----------------------------------------------------------------------------------------

@defer.inlineCallbacks
def stored_since(client, names, cursors):
    """States stored per device after ``cursors[name]`` (advanced to the newest seen); fire with the total."""
    total = 0
    for name in names:
        while True:
            page = yield client.session.call("iot.history", "iot.device." + name, after_seq=cursors.get(name),
                                             limit=1000)
            total += len(page["states"])
            if page["states"]:
                cursors[name] = page["states"][-1]["seq"]
            if not page["more"]:
                break
    return total


@defer.inlineCallbacks
def main(reactor, options):
    from tests.support.clients import connect
    from tests.support.devices import register
    from tests.support.node import RouterNode, free_port
    from tests.support.polling import eventually

    class Owner:
        def addCleanup(self, fn, *args):
            pass

    port = free_port()
    node = RouterNode(name="bench-iot-mqtt", env={
        "MQTT_PORT": str(port), "DEVICE_RATE": RAISED_RATE, "DEVICE_BURST": RAISED_RATE,
        "HISTORY_MAX_STATES": "100000", "IOT_STALE_AFTER": "3600"})
    rates = [int(rate) for rate in options.rates.split(",")]
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "devices": options.devices, "seconds": options.seconds, "qos": 1,
               "device_rate": RAISED_RATE, "device_burst": RAISED_RATE,
               "load_before": [round(value, 2) for value in os.getloadavg()], "phases": []}
    subscriber = None
    mqtt_devices = []
    try:
        yield node.start()
        names = ["bench-{:03d}".format(index) for index in range(options.devices)]
        credentials = []
        for name in names:
            credentials.append((yield register(None, node, name)))
        devices = list(zip(names, credentials))
        subscriber = SubscriberProcess()
        script = os.path.abspath(__file__)
        reactor.spawnProcess(subscriber, sys.executable, [sys.executable, script, "--subscriber", "--url",
                                                          node.url, "--names", ",".join(names)],
                             env=os.environ)
        yield eventually(lambda: subscriber.message("ready") is not None, timeout=120,
                         message="subscribers did not join")
        client = yield connect(Owner(), node, sub="bench-history", role="user")
        for name, (key, secret) in devices:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
            device = yield connectProtocol(endpoint, MqttDevice(name, key, secret))
            yield device.ready
            mqtt_devices.append(device)
        http = HttpDevices(reactor, node.http, devices)
        cursors = {}
        yield stored_since(client, names, cursors)
        # the node's own CPU with every connection open and nothing sent (clock, presence, timers)
        idle, wall = node_cpu_seconds(node), time.perf_counter()
        yield task.deferLater(reactor, options.idle, lambda: None)
        idle_per_s = (node_cpu_seconds(node) - idle) / (time.perf_counter() - wall)
        results["idle_node_cpu_per_s"] = round(idle_per_s, 4)

        def send_mqtt(index, value):
            mqtt_devices[index].send(value)

        for number, rate in enumerate(rates):
            order = ("mqtt", "http") if number % 2 == 0 else ("http", "mqtt")
            for path in order:
                acked_before = sum(device.acked for device in mqtt_devices) if path == "mqtt" else http.acked
                failed_before = http.failed
                cpu, driver = node_cpu_seconds(node), time.process_time()
                start_ms = time.time() * 1000
                wall = time.perf_counter()
                sent = yield drive(reactor, send_mqtt if path == "mqtt" else http.send, len(devices), rate,
                                   options.seconds)
                send_s = time.perf_counter() - wall
                end_ms = time.time() * 1000

                def answered():
                    if path == "mqtt":
                        return sum(device.acked for device in mqtt_devices) - acked_before
                    return http.acked + http.failed - acked_before - failed_before
                try:
                    yield eventually(lambda: answered() >= sent, timeout=options.drain, interval=0.05)
                except Exception:
                    print("phase not answered within --drain: {} of {}".format(answered(), sent), flush=True)
                done_s = time.perf_counter() - wall
                yield task.deferLater(reactor, options.grace, lambda: None)
                cpu, driver = node_cpu_seconds(node) - cpu, time.process_time() - driver
                net = cpu - idle_per_s * (time.perf_counter() - wall)
                acked = (sum(device.acked for device in mqtt_devices) if path == "mqtt" else http.acked)
                stored = yield stored_since(client, names, cursors)
                results["phases"].append({
                    "path": path, "rate": rate, "sent": sent, "send_s": round(send_s, 2),
                    "done_s": round(done_s, 2),
                    "start_ms": start_ms, "end_ms": end_ms, "acked": acked - acked_before,
                    "failed": http.failed - failed_before if path == "http" else 0, "stored": stored,
                    "node_cpu_s": round(cpu, 2), "net_cpu_s": round(net, 3), "driver_cpu_s": round(driver, 2),
                    "load": round(os.getloadavg()[0], 2)})
                print(json.dumps(results["phases"][-1]), flush=True)
        subscriber.transport.write(b"dump\n")
        yield eventually(lambda: subscriber.message("samples") is not None, timeout=60,
                         message="subscriber did not report")
        samples = subscriber.message("samples")
        for phase in results["phases"]:
            delivered, latencies = phase_counts(samples, phase.pop("start_ms"), phase.pop("end_ms"))
            phase.update(delivered=delivered, accepted_per_s=round(phase["stored"] / phase["done_s"], 1),
                         node_cpu_us_per_reading=per_reading(phase["node_cpu_s"], phase["stored"]),
                         net_cpu_us_per_reading=per_reading(phase["net_cpu_s"], phase["stored"]),
                         driver_cpu_us_per_reading=per_reading(phase["driver_cpu_s"], phase["sent"]),
                         **(report.latency_summary(latencies, digits=1) if latencies else {}))
        yield client.close()
    finally:
        for device in mqtt_devices:
            device.close()
        if subscriber is not None and subscriber.ended.called is False:
            subscriber.transport.signalProcess("TERM")
            yield subscriber.ended
        yield node.stop()
        node.cleanup()
    results["load_after"] = [round(value, 2) for value in os.getloadavg()]
    results["cost"] = {}
    for rate in rates:
        by_path = {phase["path"]: phase for phase in results["phases"] if phase["rate"] == rate}
        results["cost"][str(rate)] = cost_ratio(by_path["mqtt"]["net_cpu_us_per_reading"],
                                                by_path["http"]["net_cpu_us_per_reading"])
    write(results, options.output)


def write(results, name="iot_mqtt"):
    lines = ["# IoT: MQTT devices vs HTTP devices into history and to subscribers", "",
             "{devices} registered devices on one dev node (all-in-one, one router worker; DEVICE_RATE and "
             "DEVICE_BURST raised to {device_rate} for the run, so the per-device limit is not what is "
             "measured), {seconds} s per phase at a total rate spread round-robin over the devices. "
             "MQTT: one connection per device, QoS {qos}, a minimal Twisted MQTT 3.1.1 client in the driver "
             "process; HTTP: signed `POST /publish` per reading over a persistent connection pool (treq). "
             "{devices} browser stand-ins: WAMP sessions (JSON over WebSocket) in a separate Python process, "
             "session i subscribed to device i's topic. "
             "Last ack: seconds from the phase's first reading sent to its last PUBACK / HTTP answer; "
             "accepted/s: stored readings over that time. Latency: subscriber receipt minus send time (the "
             "reading's value). Stored: states found in `iot.history` per device after the phase. Node CPU: "
             "user + system of every process of the node during the phase and its grace period, per stored "
             "reading; net: less the node's idle CPU ({idle} CPU-s/s with every connection open, measured "
             "before the phases) over the same time; driver: CPU of the driving process (the devices' "
             "clients) per reading sent. Python {python}, {cpus} CPUs, shared machine: load "
             "average {before} before, "
             "{after} after.".format(before=results["load_before"], after=results["load_after"],
                                     idle=results["idle_node_cpu_per_s"], python=results["machine"]["python"],
                                     cpus=results["machine"]["cpus"],
                                     **results), "",
             "| path | target/s | sent | acked | last ack s | stored | delivered | accepted/s | p50 ms "
             "| p99 ms | max ms "
             "| node CPU us/reading | net us/reading | driver us/reading | load |",
             "| --- " + "| ---: " * 14 + "|"]
    for phase in results["phases"]:
        lines.append("| {path} | {rate} | {sent} | {acked} | {done_s} | {stored} | {delivered} "
                     "| {accepted_per_s} "
                     "| {p50} | {p99} | {top} | {node_cpu_us_per_reading} | {net_cpu_us_per_reading} "
                     "| {driver_cpu_us_per_reading} | {load} |".format(
                         p50=phase.get("p50_ms", "-"), p99=phase.get("p99_ms", "-"),
                         top=phase.get("max_ms", "-"), **phase))
    lines += ["", "Net node CPU per reading, MQTT over HTTP: " + ", ".join(
        "{} at {}/s".format(ratio, rate) for rate, ratio in results["cost"].items()) + "."]
    report.save(name, "\n".join(lines) + "\n", results)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rates", default="100,500,1000", help="total readings/s of each phase pair")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--grace", type=float, default=5, help="wait after a phase before counting")
    parser.add_argument("--drain", type=float, default=120,
                        help="longest wait for the phase's last PUBACK / HTTP answer")
    parser.add_argument("--output", default="iot_mqtt", help="results name under bench/results")
    parser.add_argument("--idle", type=float, default=10, help="seconds of the idle CPU baseline")
    parser.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    task.react(subscriber_main if arguments.subscriber else main, [arguments])
