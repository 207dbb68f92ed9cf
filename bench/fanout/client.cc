// One load-client process of bench/fanout.py, in C++: a drop-in replacement for bench/fanout/client.js
// (same arguments, stdin and stdout) that needs about half of its CPU per received message, so that
// the load clients starve the server under test less on a small machine. One epoll loop,
// non-blocking sockets, a minimal WebSocket (RFC 6455) client and just enough JSON scanning for WAMP.
//
//   client URL COUNT TOKENS_FILE|- CONNECT_RATE [publish RATE]
//
// URL is ws://HOST[:PORT]/PATH with HOST an IPv4 literal or "localhost". COUNT connections are opened
// CONNECT_RATE per second, in batches every 50 ms. Each joins realm "reactive" (WAMP-ticket = line
// i % lines of TOKENS_FILE for connection i, or anonymous with "-"), subscribes time.tic and records,
// for events whose payload ts lies in the window, the latency (receive time - ts) in a 0.1 ms histogram
// and the seqs seen. "publish RATE" makes connection 0 a publisher of time.tic at RATE/s instead (for
// the bare router, which has no clock); it counts as subscribed.
//
// stdin: one JSON line {"t0": ms, "t1": ms, "grace": ms}. At t1 + grace + 50 ms the result is printed
// and the process exits 0. stdout, JSON lines:
//   {"type":"progress","subscribed":N,"failed":N,"closed":N}   every 2 s until all are subscribed
//   {"type":"ready","subscribed":N,"failed":N}                 once, when all are subscribed
//   {"type":"abort","reason":...}                              per WAMP ABORT
//   {"type":"result","subscribed":N,"failed":N,"closed":N,"in_window":N,"late":N,"max_ms":X,
//    "bucket_ms":0.1,"hist":{"<bucket>":count,...},"seqs":[...]}
//
// Cost: about 1 µs of user CPU per received message; the rest (8-14 µs here) is the kernel's: the
// read() of each message, the ACK it sends over loopback (including the server socket's processing
// of that ACK) and a wakeup per message when the server writes slowly.
//
// Environment (optional): FANOUT_CLIENT_COALESCE_US=N pauses N µs after each wakeup that had socket
// events, so that the next epoll_wait finds more messages ready. N = 1000 saved a quarter to a third
// of the client's CPU per message against Crossbar, but adds up to N µs to the measured latencies.
// Default 0: every message is handled as soon as it arrives, as by client.js.
// FANOUT_CLIENT_TOPIC=URI subscribes URI instead of time.tic (bench/apps_publish.py: app.<name>.* events
// whose first argument carries "seq" and "ts" the same way).
//
// Build: bench/fanout/build.sh (g++ -O2 -std=c++17, no libraries beyond libc/libstdc++).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

constexpr double kBucketMs = 0.1;                    // histogram resolution
constexpr size_t kBuckets = 600001;                  // up to 60 s; the last bucket is the overflow
constexpr double kOpenIntervalMs = 50;               // connection pacing, as client.js
constexpr double kProgressIntervalMs = 2000;
constexpr double kSweepIntervalMs = 1000;            // checks handshake and closing timeouts
constexpr double kTimeoutMs = 30000;                 // ws: handshakeTimeout and close timeout
constexpr size_t kMaxHandshake = 16384;              // bytes of HTTP response headers we accept
constexpr uint64_t kMaxMessage = 64u << 20;          // larger frames/messages are a protocol error
constexpr uint64_t kStdinId = std::numeric_limits<uint64_t>::max();   // epoll id of fd 0
constexpr double kNever = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------------
// Small utilities

double clockMs(clockid_t clock) {
    timespec now;
    clock_gettime(clock, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}
double realtimeMs() { return clockMs(CLOCK_REALTIME); }    // Date.now(), with sub-ms precision
double monotonicMs() { return clockMs(CLOCK_MONOTONIC); }  // for intervals

// xorshift64*: WebSocket masks and keys need to be unpredictable to proxies, not cryptographic.
uint64_t rngState = 0;
void seedRandom() {
    if (getrandom(&rngState, sizeof rngState, 0) != static_cast<ssize_t>(sizeof rngState) || rngState == 0)
        rngState = static_cast<uint64_t>(monotonicMs() * 1e6) ^ (static_cast<uint64_t>(getpid()) << 32) ^ 1;
}
uint64_t random64() {
    rngState ^= rngState >> 12;
    rngState ^= rngState << 25;
    rngState ^= rngState >> 27;
    return rngState * 2685821657736338717ULL;
}

std::string base64(const unsigned char* data, size_t size) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t chunk = data[i] << 16;
        if (i + 1 < size) chunk |= data[i + 1] << 8;
        if (i + 2 < size) chunk |= data[i + 2];
        out += alphabet[chunk >> 18 & 63];
        out += alphabet[chunk >> 12 & 63];
        out += i + 1 < size ? alphabet[chunk >> 6 & 63] : '=';
        out += i + 2 < size ? alphabet[chunk & 63] : '=';
    }
    return out;
}

std::string jsonString(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char escape[8];
            snprintf(escape, sizeof escape, "\\u%04x", c);
            out += escape;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// The shortest of %.15g / %.17g that reads back as the same double (integers print without exponent).
std::string jsonNumber(double value) {
    char text[40];
    snprintf(text, sizeof text, "%.15g", value);
    if (strtod(text, nullptr) != value) snprintf(text, sizeof text, "%.17g", value);
    return text;
}

// Writes one line to stdout (a blocking pipe) completely: bench/fanout.py reads lines.
void emit(const std::string& line) {
    std::string text = line + "\n";
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(STDOUT_FILENO, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
}

// ---------------------------------------------------------------------------------------------------
// Minimal JSON scanning over [p, end): enough to walk a WAMP message without building a tree.
// Buffers are not NUL-terminated, so every function is bounded by end.

const char* skipSpace(const char* p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    return p;
}

// p at an opening quote; returns just past the closing quote, or nullptr if truncated.
const char* skipString(const char* p, const char* end) {
    for (++p; p < end; ++p) {
        if (*p == '\\') ++p;
        else if (*p == '"') return p + 1;
    }
    return nullptr;
}

// Returns just past the JSON value at p, or nullptr if it is truncated.
const char* skipValue(const char* p, const char* end) {
    p = skipSpace(p, end);
    if (p >= end) return nullptr;
    if (*p == '"') return skipString(p, end);
    if (*p == '[' || *p == '{') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skipString(p, end);
                if (p == nullptr) return nullptr;
                continue;
            }
            if (*p == '[' || *p == '{') ++depth;
            else if ((*p == ']' || *p == '}') && --depth == 0) return p + 1;
            ++p;
        }
        return nullptr;
    }
    while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        ++p;   // number, true, false, null
    return p;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isNumberChar(char c) { return isDigit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; }

// Parses the JSON number at p. False if p holds no number. Integers of up to 15 digits (epoch ms, seqs:
// the common case) are converted directly; anything else goes through strtod, which needs a
// NUL-terminated copy.
bool parseNumber(const char* p, const char* end, double* out) {
    if (p >= end || (*p != '-' && !isDigit(*p))) return false;
    const bool negative = *p == '-';
    const char* q = negative ? p + 1 : p;
    const char* digits = q;
    int64_t integer = 0;
    while (q < end && isDigit(*q) && q - digits < 15) integer = integer * 10 + (*q++ - '0');
    if (q > digits && (q == end || !isNumberChar(*q))) {
        *out = static_cast<double>(negative ? -integer : integer);
        return true;
    }
    char text[64];
    size_t n = 0;
    while (p + n < end && n < sizeof text - 1 && isNumberChar(p[n])) {
        text[n] = p[n];
        ++n;
    }
    text[n] = '\0';
    char* parsed = nullptr;
    *out = strtod(text, &parsed);
    return parsed == text + n;
}

// The WAMP message type: the integer after the opening '['. *rest is set just past it. -1 if none.
int messageType(const char* p, const char* end, const char** rest) {
    p = skipSpace(p, end);
    if (p >= end || *p != '[') return -1;
    p = skipSpace(p + 1, end);
    int type = 0;
    const char* digits = p;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 6) type = type * 10 + (*p++ - '0');
    if (p == digits) return -1;
    *rest = p;
    return type;
}

// Element n (n >= 1) of the array whose element 0 ends at p; nullptr if the array is shorter.
const char* element(const char* p, const char* end, int n) {
    for (int i = 1;; ++i) {
        p = skipSpace(p, end);
        if (p >= end || *p != ',') return nullptr;
        p = skipSpace(p + 1, end);
        if (i == n) return p;
        p = skipValue(p, end);
        if (p == nullptr) return nullptr;
    }
}

// The fields of a time.tic payload that the measurement uses.
struct Tic {
    bool hasTs = false;
    double ts = 0;
    bool hasSeq = false;
    double seq = 0;
};

// p at the positional arguments of an EVENT ([{"value": ..., "seq": N, "ts": N, ...}, ...]): reads
// "ts" and "seq" of the first argument if it is an object. Only numbers count (client.js requires a
// numeric ts; a non-numeric seq is recorded as null).
Tic scanTic(const char* p, const char* end) {
    Tic tic;
    if (p == nullptr || p >= end || *p != '[') return tic;
    p = skipSpace(p + 1, end);
    if (p >= end || *p != '{') return tic;
    p = skipSpace(p + 1, end);
    while (p < end && *p == '"') {
        const char* key = p + 1;
        const char* afterKey = skipString(p, end);
        if (afterKey == nullptr) return tic;
        size_t keySize = static_cast<size_t>(afterKey - 1 - key);
        p = skipSpace(afterKey, end);
        if (p >= end || *p != ':') return tic;
        p = skipSpace(p + 1, end);
        if (keySize == 2 && memcmp(key, "ts", 2) == 0) tic.hasTs = parseNumber(p, end, &tic.ts);
        else if (keySize == 3 && memcmp(key, "seq", 3) == 0) tic.hasSeq = parseNumber(p, end, &tic.seq);
        p = skipValue(p, end);
        if (p == nullptr) return tic;
        p = skipSpace(p, end);
        if (p >= end || *p != ',') break;
        p = skipSpace(p + 1, end);
    }
    return tic;
}

// The number after "key" in a flat JSON object (the stdin window line).
bool numberField(const std::string& text, const char* key, double* out) {
    std::string quoted = std::string("\"") + key + "\"";
    size_t at = text.find(quoted);
    if (at == std::string::npos) return false;
    const char* end = text.data() + text.size();
    const char* p = skipSpace(text.data() + at + quoted.size(), end);
    if (p >= end || *p != ':') return false;
    return parseNumber(skipSpace(p + 1, end), end, out);
}

// ---------------------------------------------------------------------------------------------------
// Command line

struct Options {
    sockaddr_in address{};
    std::string hostHeader;      // HOST[:PORT] as written in the URL (what ws sends as Host)
    std::string path;
    int count = 0;
    std::vector<std::string> tokens;   // empty: anonymous
    int connectRate = 0;
    double publishRate = 0;            // > 0: connection 0 publishes instead of subscribing
};

bool parseUrl(const std::string& url, Options* options) {
    const std::string scheme = "ws://";
    if (url.compare(0, scheme.size(), scheme) != 0) return false;
    size_t slash = url.find('/', scheme.size());
    std::string authority = url.substr(scheme.size(), slash == std::string::npos ? std::string::npos
                                                                                 : slash - scheme.size());
    options->path = slash == std::string::npos ? "/" : url.substr(slash);
    options->hostHeader = authority;
    std::string host = authority;
    int port = 80;
    size_t colon = authority.rfind(':');
    if (colon != std::string::npos) {
        host = authority.substr(0, colon);
        port = atoi(authority.c_str() + colon + 1);
    }
    if (host == "localhost") host = "127.0.0.1";
    options->address.sin_family = AF_INET;
    options->address.sin_port = htons(static_cast<uint16_t>(port));
    return port > 0 && port < 65536 && inet_pton(AF_INET, host.c_str(), &options->address.sin_addr) == 1;
}

bool readTokens(const char* file, std::vector<std::string>* tokens) {
    std::ifstream in(file);
    if (!in) return false;
    std::string line;
    while (std::getline(in, line))   // split on '\n' and drop empty lines, as client.js
        if (!line.empty()) tokens->push_back(line);
    return !tokens->empty();
}

bool parseOptions(int argc, char** argv, Options* options) {
    if (argc != 5 && argc != 7) return false;
    if (!parseUrl(argv[1], options)) {
        fprintf(stderr, "client: unsupported URL %s (only ws://IPv4-or-localhost[:port]/path)\n", argv[1]);
        return false;
    }
    options->count = atoi(argv[2]);
    if (strcmp(argv[3], "-") != 0 && !readTokens(argv[3], &options->tokens)) {
        fprintf(stderr, "client: no tokens in %s\n", argv[3]);
        return false;
    }
    options->connectRate = atoi(argv[4]);
    if (argc == 7) {
        if (strcmp(argv[5], "publish") != 0) return false;
        options->publishRate = atof(argv[6]);
    }
    return options->count > 0;
}

// ---------------------------------------------------------------------------------------------------
// The client

enum class State { Idle, Connecting, Upgrading, Open, Closing, Done };

struct Connection {
    int fd = -1;
    State state = State::Idle;
    double since = 0;             // monotonic ms when the current state's timeout started
    std::string in;               // unparsed bytes (partial HTTP response or frame) kept across reads
    std::string message;          // a fragmented message being reassembled
    bool fragmented = false;
    std::string out;              // bytes the kernel did not accept yet (sent on EPOLLOUT)
    bool writeArmed = false;
    uint64_t request = 1;         // WAMP request ids
};

class Client {
public:
    explicit Client(const Options& options)
        : options_(options), connections_(static_cast<size_t>(options.count)), hist_(kBuckets, 0) {
        const char* coalesce = getenv("FANOUT_CLIENT_COALESCE_US");
        coalesceUs_ = coalesce ? std::max(0L, std::min(atol(coalesce), 999999L)) : 0;
        const char* topic = getenv("FANOUT_CLIENT_TOPIC");
        topic_ = jsonString(topic && *topic ? topic : "time.tic");
    }

    int run();

private:
    // connections
    void openNext();
    void onSocket(size_t index, uint32_t events);
    void onConnected(Connection& c);
    void onReadable(Connection& c, uint32_t events);
    void feed(Connection& c, char* data, size_t size);
    size_t parseUpgrade(Connection& c, char* p, size_t size);
    size_t parseFrame(Connection& c, char* p, size_t size);
    void finish(Connection& c, bool failed);
    void startClose(Connection& c);
    // writing
    void sendRaw(Connection& c, const char* data, size_t size);
    void sendFrame(Connection& c, uint8_t opcode, const char* payload, size_t size);
    void sendText(Connection& c, const std::string& text) { sendFrame(c, 0x1, text.data(), text.size()); }
    void flush(Connection& c);
    void armWrite(Connection& c, bool on);
    // WAMP
    void onOpen(Connection& c);
    void onMessage(Connection& c, const char* p, size_t size);
    void onTic(const Tic& tic);
    void publish();
    void maybeReady();
    // stdin, timers, output
    void watchStdin();
    void onStdin();
    void takeStdinLines();
    void onWindowLine(const std::string& line);
    int waitMs() const;
    void runTimers();
    void sweepTimeouts();
    void emitResult();
    size_t indexOf(const Connection& c) const { return static_cast<size_t>(&c - connections_.data()); }

    Options options_;
    std::vector<Connection> connections_;
    int epoll_ = -1;
    size_t opened_ = 0;
    std::string stdinText_;
    std::string frame_;                       // reused buffer for outgoing frames

    // counters, as client.js
    long subscribed_ = 0, failed_ = 0, closed_ = 0, inWindow_ = 0, late_ = 0;
    bool readySent_ = false;
    std::vector<uint32_t> hist_;
    double maxLatency_ = 0;
    std::unordered_set<double> seqs_;
    bool seqlessSeen_ = false;                // an in-window event without a numeric seq (JSON null)
    bool windowSet_ = false;
    double t0_ = 0, t1_ = 0, grace_ = 0;

    // timers: monotonic ms, except resultAt_ (realtime ms, since the window is in epoch ms)
    double nextOpen_ = kNever, nextProgress_ = kNever, nextSweep_ = kNever, nextPublish_ = kNever;
    double resultAt_ = kNever;
    long coalesceUs_ = 0;                     // FANOUT_CLIENT_COALESCE_US
    std::string topic_;                       // the subscribed topic as a JSON string (FANOUT_CLIENT_TOPIC)
    bool publishing_ = false;
    long long publishSeq_ = 0;
    uint64_t publishRequest_ = 1000;

    static char scratch_[1 << 18];            // every read() lands here first
};

char Client::scratch_[1 << 18];

// ----- connections ---------------------------------------------------------------------------------

void Client::openNext() {
    Connection& c = connections_[opened_++];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
        c.state = State::Connecting;   // so that finish() counts it
        finish(c, true);
        return;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.state = State::Connecting;
    c.since = monotonicMs();
    int result = connect(c.fd, reinterpret_cast<const sockaddr*>(&options_.address), sizeof options_.address);
    if (result < 0 && errno != EINPROGRESS) {
        finish(c, true);
        return;
    }
    // EPOLLOUT reports the end of the connect (success or failure, see onConnected)
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT;
    event.data.u64 = indexOf(c);
    c.writeArmed = true;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &event) < 0) finish(c, true);
}

void Client::onSocket(size_t index, uint32_t events) {
    Connection& c = connections_[index];
    if (c.state == State::Done) return;       // finished earlier in this batch of events
    if (c.state == State::Connecting) {
        onConnected(c);
        return;
    }
    if (events & EPOLLOUT) flush(c);
    if (c.state != State::Done && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) onReadable(c, events);
}

void Client::onConnected(Connection& c) {
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0 || error != 0) {
        finish(c, true);
        return;
    }
    unsigned char nonce[16];
    for (size_t i = 0; i < sizeof nonce; i += 8) {
        uint64_t bits = random64();
        memcpy(nonce + i, &bits, 8);
    }
    std::string request = "GET " + options_.path + " HTTP/1.1\r\n"
                          "Host: " + options_.hostHeader + "\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: " + base64(nonce, sizeof nonce) + "\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n";
    c.state = State::Upgrading;
    c.since = monotonicMs();
    sendRaw(c, request.data(), request.size());
    if (c.state != State::Done && c.out.empty()) armWrite(c, false);
}

// One read per readiness report (level-triggered): a read of 256 KB normally drains the socket, and
// if not, epoll reports it again, which keeps the connections fair.
void Client::onReadable(Connection& c, uint32_t events) {
    ssize_t n = read(c.fd, scratch_, sizeof scratch_);
    if (n > 0) {
        feed(c, scratch_, static_cast<size_t>(n));
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && !(events & (EPOLLERR | EPOLLHUP))) return;
    // EOF or a socket error: before the upgrade completed ws reports an 'error' (failed), after it only 'close'
    finish(c, c.state == State::Upgrading);
}

// Parses what can be parsed of the bytes carried over plus the new ones. In the common case (nothing
// carried over, whole frames per read) the frames are parsed in place in the read buffer, without copying.
void Client::feed(Connection& c, char* data, size_t size) {
    char* p = data;
    if (!c.in.empty()) {
        c.in.append(data, size);
        p = &c.in[0];
        size = c.in.size();
    }
    size_t used = 0;
    if (c.state == State::Upgrading) used = parseUpgrade(c, p, size);
    while (c.state == State::Open || c.state == State::Closing) {
        size_t n = parseFrame(c, p + used, size - used);
        if (n == 0) break;   // incomplete frame (or the connection ended)
        used += n;
    }
    if (c.state == State::Done) return;   // finish() released the buffers, p may be gone
    if (p == data) c.in.assign(p + used, size - used);
    else c.in.erase(0, used);
}

// The HTTP response to the upgrade request: anything but 101 counts as failed, as in ws.
size_t Client::parseUpgrade(Connection& c, char* p, size_t size) {
    const char* end = static_cast<const char*>(memmem(p, size, "\r\n\r\n", 4));
    if (end == nullptr) {
        if (size > kMaxHandshake) finish(c, true);
        return 0;
    }
    const char* space = static_cast<const char*>(memchr(p, ' ', static_cast<size_t>(end - p)));
    if (space == nullptr || end - space < 4 || memcmp(space + 1, "101", 3) != 0) {
        finish(c, true);
        return 0;
    }
    c.state = State::Open;
    onOpen(c);
    return static_cast<size_t>(end + 4 - p);
}

// One frame at p: returns its size once complete (0 while incomplete) and handles it.
size_t Client::parseFrame(Connection& c, char* p, size_t size) {
    if (size < 2) return 0;
    const auto* bytes = reinterpret_cast<const unsigned char*>(p);
    const bool fin = bytes[0] & 0x80;
    const uint8_t opcode = bytes[0] & 0x0f;
    const bool masked = bytes[1] & 0x80;
    uint64_t length = bytes[1] & 0x7f;
    size_t header = 2;
    if (length == 126) {
        if (size < 4) return 0;
        length = static_cast<uint64_t>(bytes[2]) << 8 | bytes[3];
        header = 4;
    } else if (length == 127) {
        if (size < 10) return 0;
        length = 0;
        for (int i = 0; i < 8; ++i) length = length << 8 | bytes[2 + i];
        header = 10;
    }
    if (length > kMaxMessage) {
        finish(c, true);
        return 0;
    }
    const size_t maskAt = header;
    if (masked) header += 4;
    if (size < header + length) return 0;
    char* payload = p + header;
    if (masked)   // servers must not mask, but undo it if one does
        for (uint64_t i = 0; i < length; ++i) payload[i] ^= p[maskAt + (i & 3)];

    switch (opcode) {
    case 0x0:   // continuation
        if (!c.fragmented || c.message.size() + length > kMaxMessage) {
            finish(c, true);
            return 0;
        }
        c.message.append(payload, length);
        if (fin) {
            c.fragmented = false;
            onMessage(c, c.message.data(), c.message.size());
            c.message.clear();   // keeps the capacity for the next fragmented message
        }
        break;
    case 0x1:   // text
    case 0x2:   // binary
        if (c.fragmented) {
            finish(c, true);
            return 0;
        }
        if (fin) {
            onMessage(c, payload, length);
        } else {
            c.message.assign(payload, length);
            c.fragmented = true;
        }
        break;
    case 0x8:   // close: echo the status code (if any), then close the socket
        if (c.state == State::Open) sendFrame(c, 0x8, payload, std::min<uint64_t>(length, 2));
        finish(c, false);
        return 0;
    case 0x9:   // ping (Crossbar drops clients that do not answer): pong with the same payload
        if (c.state == State::Open) sendFrame(c, 0xA, payload, length);
        break;
    case 0xA:   // pong
        break;
    default:
        finish(c, true);
        return 0;
    }
    return header + length;
}

// Counts a connection's end as client.js does: every end is a 'close'; ends before the WebSocket
// opened and protocol errors are also an 'error' (failed).
void Client::finish(Connection& c, bool failed) {
    if (c.state == State::Done || c.state == State::Idle) return;
    if (failed) ++failed_;
    ++closed_;
    if (c.fd >= 0) close(c.fd);   // also removes it from the epoll set
    c.fd = -1;
    c.state = State::Done;
    std::string().swap(c.in);
    std::string().swap(c.message);
    std::string().swap(c.out);
}

// ws.close(): send an empty close frame and wait (up to the timeout) for the server's close or EOF.
void Client::startClose(Connection& c) {
    sendFrame(c, 0x8, nullptr, 0);
    if (c.state == State::Done) return;
    c.state = State::Closing;
    c.since = monotonicMs();
}

// ----- writing -------------------------------------------------------------------------------------

void Client::sendRaw(Connection& c, const char* data, size_t size) {
    if (c.out.empty()) {
        ssize_t n = send(c.fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                finish(c, c.state == State::Upgrading);
                return;
            }
            n = 0;
        }
        data += n;
        size -= static_cast<size_t>(n);
        if (size == 0) return;
    }
    c.out.append(data, size);   // the rest goes out on EPOLLOUT
    armWrite(c, true);
}

// A client frame: FIN, the opcode, the payload length and a fresh random 4-byte mask (RFC 6455 5.3).
void Client::sendFrame(Connection& c, uint8_t opcode, const char* payload, size_t size) {
    frame_.clear();
    frame_ += static_cast<char>(0x80 | opcode);
    if (size < 126) {
        frame_ += static_cast<char>(0x80 | size);
    } else if (size < 65536) {
        frame_ += static_cast<char>(0x80 | 126);
        frame_ += static_cast<char>(size >> 8);
        frame_ += static_cast<char>(size & 0xff);
    } else {
        frame_ += static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) frame_ += static_cast<char>(static_cast<uint64_t>(size) >> shift);
    }
    uint32_t bits = static_cast<uint32_t>(random64() >> 32);
    char mask[4];
    memcpy(mask, &bits, 4);
    frame_.append(mask, 4);
    const size_t at = frame_.size();
    if (size > 0) frame_.append(payload, size);
    for (size_t i = 0; i < size; ++i) frame_[at + i] ^= mask[i & 3];
    sendRaw(c, frame_.data(), frame_.size());
}

void Client::flush(Connection& c) {
    while (!c.out.empty()) {
        ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            finish(c, c.state == State::Upgrading);
            return;
        }
        c.out.erase(0, static_cast<size_t>(n));
    }
    armWrite(c, false);
}

void Client::armWrite(Connection& c, bool on) {
    if (c.writeArmed == on) return;
    epoll_event event{};
    event.events = EPOLLIN | (on ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    event.data.u64 = indexOf(c);
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &event);
    c.writeArmed = on;
}

// ----- WAMP ----------------------------------------------------------------------------------------

void Client::onOpen(Connection& c) {
    sendText(c, options_.tokens.empty()
                    ? R"([1,"reactive",{"roles":{"subscriber":{},"publisher":{}},"authmethods":["anonymous"]}])"
                    : R"([1,"reactive",{"roles":{"subscriber":{},"publisher":{}},"authmethods":["ticket"]}])");
}

void Client::onMessage(Connection& c, const char* p, size_t size) {
    if (c.state != State::Open) return;   // after our close frame, only the server's close matters
    const char* end = p + size;
    const char* rest = nullptr;
    switch (messageType(p, end, &rest)) {
    case 36:   // EVENT [36, subscription, publication, details, [payload, ...], ...]
        onTic(scanTic(element(rest, end, 4), end));
        break;
    case 4: {  // CHALLENGE
        const std::string& token = options_.tokens.empty() ? std::string() :
                                   options_.tokens[indexOf(c) % options_.tokens.size()];
        sendText(c, "[5," + jsonString(token) + ",{}]");
        break;
    }
    case 2:    // WELCOME
        if (options_.publishRate > 0 && indexOf(c) == 0) {
            publishing_ = true;
            publishSeq_ = static_cast<long long>(realtimeMs());
            nextPublish_ = monotonicMs() + 1000.0 / options_.publishRate;
            ++subscribed_;
            maybeReady();
        } else {
            sendText(c, "[32," + std::to_string(c.request++) + ",{}," + topic_ + "]");
        }
        break;
    case 33:   // SUBSCRIBED
        ++subscribed_;
        maybeReady();
        break;
    case 3: {  // ABORT [3, details, reason]
        ++failed_;
        const char* reason = element(rest, end, 2);
        const char* reasonEnd = reason ? skipValue(reason, end) : nullptr;
        emit(reasonEnd ? R"({"type":"abort","reason":)" + std::string(reason, reasonEnd) + "}"
                       : std::string(R"({"type":"abort"})"));
        startClose(c);
        break;
    }
    default:
        break;
    }
}

// client.js onEvent: only events whose ts lies in [t0, t1] count; those received after t1 + grace are late.
void Client::onTic(const Tic& tic) {
    if (!windowSet_ || !tic.hasTs) return;
    if (tic.ts < t0_ || tic.ts > t1_) return;
    const double now = realtimeMs();
    const double latency = now - tic.ts;
    if (now > t1_ + grace_) {
        ++late_;
        return;
    }
    ++inWindow_;
    if (tic.hasSeq) seqs_.insert(tic.seq);
    else seqlessSeen_ = true;
    const double bucket = std::floor(latency / kBucketMs);
    hist_[bucket <= 0 ? 0 : bucket >= kBuckets - 1 ? kBuckets - 1 : static_cast<size_t>(bucket)]++;
    if (latency > maxLatency_) maxLatency_ = latency;
}

// [16, request, {}, "time.tic", [{"value": "HH:MM:SS", "seq": seq, "ts": ts}]], ts in epoch ms (UTC value).
void Client::publish() {
    Connection& c = connections_[0];
    if (c.state != State::Open) return;
    const long long now = static_cast<long long>(realtimeMs());
    publishSeq_ = std::max(publishSeq_ + 1, now);
    const time_t seconds = static_cast<time_t>(now / 1000);
    tm utc;
    gmtime_r(&seconds, &utc);
    char text[200];
    snprintf(text, sizeof text, R"([16,%llu,{},"time.tic",[{"value":"%02d:%02d:%02d","seq":%lld,"ts":%lld}]])",
             static_cast<unsigned long long>(publishRequest_++), utc.tm_hour, utc.tm_min, utc.tm_sec,
             publishSeq_, now);
    sendText(c, text);
}

void Client::maybeReady() {
    if (readySent_ || subscribed_ != options_.count) return;
    readySent_ = true;
    emit(R"({"type":"ready","subscribed":)" + std::to_string(subscribed_) + R"(,"failed":)" +
         std::to_string(failed_) + "}");
}

// ----- stdin, timers, output -----------------------------------------------------------------------

void Client::watchStdin() {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kStdinId;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, STDIN_FILENO, &event) == 0 || errno != EPERM) return;
    // a regular file (or /dev/null) cannot be polled, and is all readable now
    ssize_t n;
    while ((n = read(STDIN_FILENO, scratch_, sizeof scratch_)) > 0) stdinText_.append(scratch_, static_cast<size_t>(n));
    stdinText_ += '\n';
    takeStdinLines();
}

void Client::onStdin() {
    char buffer[4096];
    ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {   // EOF: like readline, the last line counts even without a newline
        epoll_ctl(epoll_, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
        stdinText_ += '\n';
    } else {
        stdinText_.append(buffer, static_cast<size_t>(n));
    }
    takeStdinLines();
}

void Client::takeStdinLines() {
    size_t newline;
    while ((newline = stdinText_.find('\n')) != std::string::npos) {
        onWindowLine(stdinText_.substr(0, newline));
        stdinText_.erase(0, newline + 1);
    }
}

// {"t0": ms, "t1": ms, "grace": ms}: the window; the result is due at t1 + grace + 50 ms (or 50 ms from
// now if that has passed). A later line replaces the window; the earliest deadline wins, as with
// client.js's timers.
void Client::onWindowLine(const std::string& line) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;
    double t0, t1, grace;
    if (!numberField(line, "t0", &t0) || !numberField(line, "t1", &t1) || !numberField(line, "grace", &grace)) {
        fprintf(stderr, "client: bad window line: %s\n", line.c_str());
        return;
    }
    t0_ = t0;
    t1_ = t1;
    grace_ = grace;
    windowSet_ = true;
    resultAt_ = std::min(resultAt_, std::max(realtimeMs(), t1 + grace) + 50);
}

// epoll_wait's timeout: until the earliest timer, rounded up to whole ms so that it is never early.
int Client::waitMs() const {
    const double mono = monotonicMs();
    double wait = std::min({nextOpen_, nextProgress_, nextSweep_, nextPublish_}) - mono;
    wait = std::min(wait, resultAt_ - realtimeMs());
    if (wait <= 0) return 0;
    return static_cast<int>(std::min(std::ceil(wait), 60000.0));
}

// Interval timers keep their phase (next += interval) but never fire in a burst to catch up.
void advance(double* next, double interval, double now) {
    *next += interval;
    if (*next <= now) *next = now + interval;
}

void Client::runTimers() {
    const double mono = monotonicMs();
    if (mono >= nextOpen_) {
        const int batch = std::max(1, static_cast<int>(std::lround(options_.connectRate / 20.0)));
        for (int i = 0; i < batch && opened_ < connections_.size(); ++i) openNext();
        if (opened_ < connections_.size()) advance(&nextOpen_, kOpenIntervalMs, mono);
        else nextOpen_ = kNever;
    }
    if (mono >= nextProgress_) {
        if (!readySent_)
            emit(R"({"type":"progress","subscribed":)" + std::to_string(subscribed_) + R"(,"failed":)" +
                 std::to_string(failed_) + R"(,"closed":)" + std::to_string(closed_) + "}");
        advance(&nextProgress_, kProgressIntervalMs, mono);
    }
    if (publishing_ && mono >= nextPublish_) {
        publish();
        advance(&nextPublish_, 1000.0 / options_.publishRate, mono);
    }
    if (mono >= nextSweep_) {
        sweepTimeouts();
        advance(&nextSweep_, kSweepIntervalMs, mono);
    }
    if (realtimeMs() >= resultAt_) {
        emitResult();
        exit(0);
    }
}

// Handshakes that take longer than 30 s fail (ws handshakeTimeout); closes the server does not
// answer within 30 s end anyway.
void Client::sweepTimeouts() {
    const double now = monotonicMs();
    for (Connection& c : connections_) {
        if (now - c.since < kTimeoutMs) continue;
        if (c.state == State::Connecting || c.state == State::Upgrading) finish(c, true);
        else if (c.state == State::Closing) finish(c, false);
    }
}

void Client::emitResult() {
    std::string text = R"({"type":"result","subscribed":)" + std::to_string(subscribed_) +
                       R"(,"failed":)" + std::to_string(failed_) + R"(,"closed":)" + std::to_string(closed_) +
                       R"(,"in_window":)" + std::to_string(inWindow_) + R"(,"late":)" + std::to_string(late_) +
                       R"(,"max_ms":)" + jsonNumber(maxLatency_) + R"(,"bucket_ms":0.1,"hist":{)";
    bool first = true;
    for (size_t i = 0; i < hist_.size(); ++i) {
        if (hist_[i] == 0) continue;
        text += (first ? "\"" : ",\"") + std::to_string(i) + "\":" + std::to_string(hist_[i]);
        first = false;
    }
    text += R"(},"seqs":[)";
    first = true;
    for (double seq : seqs_) {
        text += (first ? "" : ",") + jsonNumber(seq);
        first = false;
    }
    if (seqlessSeen_) text += first ? "null" : ",null";
    text += "]}";
    emit(text);
}

int Client::run() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
        perror("client: epoll_create1");
        return 1;
    }
    watchStdin();
    const double start = monotonicMs();
    nextOpen_ = start + kOpenIntervalMs;   // setInterval: the first batch after one interval
    nextProgress_ = start + kProgressIntervalMs;
    nextSweep_ = start + kSweepIntervalMs;
    epoll_event events[1024];
    while (true) {
        runTimers();
        int n = epoll_wait(epoll_, events, 1024, waitMs());
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("client: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == kStdinId) onStdin();
            else onSocket(static_cast<size_t>(events[i].data.u64), events[i].events);
        }
        if (coalesceUs_ > 0 && n > 0) {
            timespec pause{0, coalesceUs_ * 1000};
            nanosleep(&pause, nullptr);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (!parseOptions(argc, argv, &options)) {
        fprintf(stderr, "usage: client URL COUNT TOKENS_FILE|- CONNECT_RATE [publish RATE]\n");
        return 2;
    }
    rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    signal(SIGPIPE, SIG_IGN);
    seedRandom();
    return Client(options).run();
}
