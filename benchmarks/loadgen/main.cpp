// duplex-loadgen — a WebSocket (or raw length-prefixed TCP) load generator for the echo benchmarks, and
// the subscribers of the fan-out benchmark.
//
//   duplex-loadgen --url ws://127.0.0.1:PORT/ws [--mode echo|idle|handshake|fanout] [--connections N]
//                  [--size BYTES] [--depth N] [--batch K] [--warmup S] [--duration S] [--text|--binary]
//                  [--compression] [--raw] [--threads N] [--server-pid PID]
//                  [--server-core N] [--loadgen-core N] [--connect-concurrency N]
//
// --mode fanout is the subscribers' side of the fan-out benchmark (duplex-fanout-server): the
// connections only read, and connection 0 also asks the server for K (--batch) messages of --size bytes
// to every connection, as a text message "K", whenever fewer than --depth messages are on their way to
// the slowest connection. It reports deliveries (frames of the expected size read, on all connections)
// per second and the server's CPU time per delivery. With --raw the connections make no upgrade but
// still read WebSocket frames (the raw server writes the same frames as the WebSocket servers).
//
// It is built to cost the server's peer as little as possible, so that the server is what saturates:
// epoll, edge-triggered, registered once per socket; every frame it sends is built and masked once at
// start-up and sent from that one buffer (k echoes completed by one read go back as k frames in one
// write); received frames are only counted, never copied or validated. Every run is bounded in time: a
// watchdog alarm ends the process if a phase hangs.
//
// Its last line is machine-readable: `RESULT mode=... key=value ...`. With --server-pid it samples the
// server's CPU time (utime + stime from /proc/PID/stat) at the start and end of the measured window and
// its resident memory (idle mode); with --server-core / --loadgen-core it reports how busy those cores
// were (from /proc/stat, softirq included), which shows whether the server's core saturated.
#include "wire.hpp"

#include <zlib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using bench::frame_train;
using bench::make_payload;
using bench::make_ws_frame;
using bench::train_copies;

// ---------------------------------------------------------------- options

enum class run_mode { echo, idle, handshake, fanout };

struct options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::string path = "/ws";
    run_mode mode = run_mode::echo;
    bool raw = false;
    int connections = 100;
    std::size_t size = 64;
    int depth = 1;
    int batch = 1;
    double warmup = 1.0;
    double duration = 5.0;
    bool text = true;
    bool compression = false;
    int threads = 1;
    int server_pid = 0;
    int server_core = -1;
    int loadgen_core = -1;
    int connect_concurrency = 200;
    double connect_timeout = 30.0;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "duplex-loadgen: %s\n"
                 "usage: duplex-loadgen --url ws://HOST:PORT/PATH [--raw] [--mode echo|idle|handshake|fanout]\n"
                 "       [--connections N] [--size BYTES] [--depth N] [--batch K] [--warmup S] [--duration S]\n"
                 "       [--text|--binary] [--compression] [--threads N] [--server-pid PID]\n"
                 "       [--server-core N] [--loadgen-core N] [--connect-concurrency N] [--connect-timeout S]\n",
                 why);
    std::exit(2);
}

template <class T>
T parse_number(std::string_view text, const char* what) {
    T value{};
    if constexpr (std::is_floating_point_v<T>) {
        try {
            std::size_t used = 0;
            value = static_cast<T>(std::stod(std::string(text), &used));
            if (used != text.size()) usage(what);
        } catch (const std::exception&) {
            usage(what);
        }
    } else {
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size()) usage(what);
    }
    return value;
}

// ws://HOST:PORT/PATH, or tcp://HOST:PORT for the raw echo; HOST is a numeric IPv4 address.
void parse_url(std::string_view url, options& o) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) usage("--url needs a scheme (ws:// or tcp://)");
    url.remove_prefix(scheme_end + 3);
    const auto slash = url.find('/');
    const auto authority = url.substr(0, slash);
    o.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) usage("--url needs a port");
    o.host = std::string(authority.substr(0, colon));
    if (o.host == "localhost") o.host = "127.0.0.1";
    o.port = parse_number<std::uint16_t>(authority.substr(colon + 1), "bad port in --url");
}

options parse_options(int argc, char** argv) {
    options o;
    bool have_url = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view value;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        const auto next = [&]() -> std::string_view {
            if (!value.empty()) return value;
            if (i + 1 >= argc) usage("an option is missing its value");
            return argv[++i];
        };
        if (arg == "--url") {
            parse_url(next(), o);
            have_url = true;
        } else if (arg == "--mode") {
            const auto m = next();
            if (m == "echo") o.mode = run_mode::echo;
            else if (m == "idle") o.mode = run_mode::idle;
            else if (m == "handshake") o.mode = run_mode::handshake;
            else if (m == "fanout") o.mode = run_mode::fanout;
            else usage("--mode is echo, idle, handshake or fanout");
        } else if (arg == "--raw") o.raw = true;
        else if (arg == "--connections") o.connections = parse_number<int>(next(), "bad --connections");
        else if (arg == "--size") o.size = parse_number<std::size_t>(next(), "bad --size");
        else if (arg == "--depth") o.depth = parse_number<int>(next(), "bad --depth");
        else if (arg == "--batch") o.batch = parse_number<int>(next(), "bad --batch");
        else if (arg == "--warmup") o.warmup = parse_number<double>(next(), "bad --warmup");
        else if (arg == "--duration") o.duration = parse_number<double>(next(), "bad --duration");
        else if (arg == "--text") o.text = true;
        else if (arg == "--binary") o.text = false;
        else if (arg == "--compression") o.compression = true;
        else if (arg == "--threads") o.threads = parse_number<int>(next(), "bad --threads");
        else if (arg == "--server-pid") o.server_pid = parse_number<int>(next(), "bad --server-pid");
        else if (arg == "--server-core") o.server_core = parse_number<int>(next(), "bad --server-core");
        else if (arg == "--loadgen-core") o.loadgen_core = parse_number<int>(next(), "bad --loadgen-core");
        else if (arg == "--connect-concurrency")
            o.connect_concurrency = parse_number<int>(next(), "bad --connect-concurrency");
        else if (arg == "--connect-timeout") o.connect_timeout = parse_number<double>(next(), "bad --connect-timeout");
        else if (arg == "--help" || arg == "-h") usage("help");
        else usage(("unknown option " + std::string(arg)).c_str());
    }
    if (!have_url) usage("--url is required");
    if (o.connections < 1 || o.depth < 1 || o.batch < 1 || o.threads < 1 || o.connect_concurrency < 1)
        usage("counts must be >= 1");
    if (o.warmup < 0 || o.duration <= 0) usage("--duration must be > 0 and --warmup >= 0");
    if (o.threads > o.connections) o.threads = o.connections;
    if (o.raw && o.compression) usage("--compression needs WebSocket (not --raw)");
    if (o.mode == run_mode::fanout) {
        // One thread sees every connection's count, so it knows which message the slowest has reached.
        if (o.threads != 1) usage("--mode fanout runs one thread");
        if (o.compression) usage("--mode fanout takes no --compression");
        if (o.batch > o.depth) usage("--batch must not exceed --depth");
    }
    if (o.raw && o.size > 0xFFFFFFFFu) usage("a raw record holds at most 4 GiB");
    return o;
}

// ---------------------------------------------------------------- clocks and /proc

std::uint64_t now_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

std::uint64_t seconds_to_ns(double s) { return static_cast<std::uint64_t>(s * 1e9); }

// utime + stime of a whole process, in microseconds; -1 when it cannot be read.
double process_cpu_us(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return -1;
    const auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream fields(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // After the command name: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    for (int index = 0; fields >> field; ++index) {
        if (index == 11) utime = std::stoull(field);
        if (index == 12) {
            stime = std::stoull(field);
            return double(utime + stime) * 1e6 / double(sysconf(_SC_CLK_TCK));
        }
    }
    return -1;
}

// Resident set size in bytes (from statm, so page-exact); -1 when it cannot be read.
double process_rss_bytes(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
    unsigned long long size = 0, resident = 0;
    if (!(in >> size >> resident)) return -1;
    return double(resident) * double(sysconf(_SC_PAGESIZE));
}

double self_cpu_us() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + double(usage.ru_utime.tv_usec) +
           double(usage.ru_stime.tv_usec);
}

// Busy and total jiffies of one core from /proc/stat (busy counts irq, softirq and steal; not idle/iowait).
struct core_times {
    unsigned long long busy = 0, total = 0;
};

core_times read_core(int core) {
    core_times t;
    if (core < 0) return t;
    std::ifstream in("/proc/stat");
    const std::string name = "cpu" + std::to_string(core);
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::string label;
        fields >> label;
        if (label != name) continue;
        unsigned long long v[8] = {};
        for (auto& x : v) fields >> x;
        for (const auto x : v) t.total += x;
        t.busy = t.total - v[3] - v[4];
        break;
    }
    return t;
}

double busy_pct(const core_times& a, const core_times& b) {
    if (b.total <= a.total) return -1;
    return 100.0 * double(b.busy - a.busy) / double(b.total - a.total);
}

// ---------------------------------------------------------------- latency histogram

// Log-linear buckets over nanoseconds: exact below 128 ns, then 64 buckets per power of two (~1.5%).
class histogram {
public:
    void add(std::uint64_t ns) noexcept { ++counts_[index(ns)]; ++total_; }
    void clear() noexcept { counts_.fill(0); total_ = 0; }
    void merge(const histogram& other) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
        total_ += other.total_;
    }
    std::uint64_t total() const noexcept { return total_; }
    // Microseconds at quantile q (0..1), the middle of its bucket; 0 when empty.
    double quantile_us(double q) const noexcept {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(std::ceil(q * double(total_)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= std::max<std::uint64_t>(rank, 1)) return middle(i) / 1000.0;
        }
        return middle(counts_.size() - 1) / 1000.0;
    }

private:
    static constexpr unsigned sub_bits = 6;
    static constexpr std::size_t linear = std::size_t{2} << sub_bits;  // 128
    static constexpr std::size_t bucket_count = linear + (64 - sub_bits - 1) * (std::size_t{1} << sub_bits);

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < linear) return static_cast<std::size_t>(v);
        const unsigned exponent = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= 7
        const unsigned shift = exponent - sub_bits;
        const auto mantissa = static_cast<std::size_t>(v >> shift) - (std::size_t{1} << sub_bits);
        return linear + (exponent - sub_bits - 1) * (std::size_t{1} << sub_bits) + mantissa;
    }
    static double middle(std::size_t i) noexcept {
        if (i < linear) return double(i);
        const std::size_t k = i - linear;
        const unsigned exponent = static_cast<unsigned>(k >> sub_bits) + sub_bits + 1;
        const unsigned shift = exponent - sub_bits;
        const double low = double((std::uint64_t{1} << sub_bits) + (k & ((1u << sub_bits) - 1))) * double(1ull << shift);
        return low + double(1ull << shift) / 2;
    }

    std::array<std::uint64_t, bucket_count> counts_{};
    std::uint64_t total_ = 0;
};

// ---------------------------------------------------------------- what goes on the wire

constexpr std::string_view ws_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view ws_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // RFC 6455 §1.3's example pair

std::string make_raw_record(std::string_view payload) {
    std::string record(4, '\0');
    const auto n = static_cast<std::uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) record[i] = static_cast<char>((n >> (24 - 8 * i)) & 0xFF);
    record.append(payload);
    return record;
}

// permessage-deflate (RFC 7692) of one whole message with no context takeover, so the same bytes serve
// every message: raw deflate, sync flush, the trailing 00 00 FF FF removed.
std::string deflate_message(std::string_view payload, int window_bits) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -std::max(window_bits, 9), 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out(deflateBound(&z, payload.size()) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
    z.avail_in = static_cast<uInt>(payload.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_SYNC_FLUSH);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    if (rc != Z_OK || out.size() < 4 || out.compare(out.size() - 4, 4, std::string_view("\0\0\xFF\xFF", 4)) != 0)
        throw std::runtime_error("deflate failed");
    out.resize(out.size() - 4);
    return out;
}

// ---------------------------------------------------------------- connections

enum class conn_state : std::uint8_t { connecting, upgrading, open, closing, closed };

struct connection {
    int fd = -1;
    conn_state state = conn_state::closed;
    bool deflate = false;    // permessage-deflate negotiated on this connection
    bool close_sent = false;
    bool want_close = false; // send our close (or shut down, raw) once what is queued has left
    std::uint64_t started = 0;  // handshake mode: when this cycle's connect began

    // Incoming frame parser (frames from the server are not masked; a mask is skipped if present).
    std::array<std::uint8_t, 14> header{};
    std::uint8_t header_have = 0;
    std::uint64_t payload_left = 0;
    std::uint64_t frame_length = 0;
    std::uint8_t frame_op = 0;
    bool frame_fin = false;
    bool in_payload = false;

    // Outgoing: tx_pending bytes of the repeated frame are queued, starting tx_offset into a frame.
    std::uint64_t tx_pending = 0;
    std::size_t tx_offset = 0;

    // When each message in flight was queued, oldest first (a ring of `depth` entries).
    std::unique_ptr<std::uint64_t[]> sent_at;
    std::uint32_t ring_head = 0;
    std::uint32_t in_flight = 0;

    std::uint64_t received = 0;  // fanout: messages of the expected size read so far

    std::string http;  // the upgrade response while it is being read
};

struct shared_state {
    const options* opt = nullptr;
    frame_train plain;
    frame_train compressed;
    std::string request;
    std::string close_frame;
    std::string publish_request;  // fanout: "K", connection 0's request for K more messages
    std::atomic<int> ready{0};
    std::atomic<std::uint64_t> start{0};   // when every worker had its connections up (0: not yet)
    std::atomic<int> negotiated{-1};       // -1 unknown, 0 no, 1 permessage-deflate accepted
    double rss_before = -1;                // idle mode: the server's resident memory before any connection
};

struct window_sample {
    std::uint64_t at = 0;
    double server_cpu = -1;
    double self_cpu = 0;
    core_times server_core, loadgen_core;
};

window_sample take_sample(const options& o) {
    window_sample s;
    s.at = now_ns();
    if (o.server_pid > 0) s.server_cpu = process_cpu_us(o.server_pid);
    s.self_cpu = self_cpu_us();
    s.server_core = read_core(o.server_core);
    s.loadgen_core = read_core(o.loadgen_core);
    return s;
}

class worker {
public:
    worker(shared_state& shared, int index, int connections)
        : s_(shared), o_(*shared.opt), index_(index), conns_(static_cast<std::size_t>(connections)),
          rbuf_(std::make_unique<char[]>(rbuf_size)) {
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::runtime_error("epoll_create1 failed");
        for (auto& c : conns_) c.sent_at = std::make_unique<std::uint64_t[]>(static_cast<std::size_t>(o_.depth));
    }
    ~worker() {
        for (auto& c : conns_)
            if (c.fd >= 0) ::close(c.fd);
        ::close(epfd_);
    }

    void run() {
        connect_all();
        if (s_.ready.fetch_add(1) + 1 == o_.threads) s_.start.store(now_ns());
        while (s_.start.load() == 0) poll(1);
        start_ = s_.start.load();
        switch (o_.mode) {
        case run_mode::echo: run_echo(); break;
        case run_mode::idle: run_idle(); break;
        case run_mode::handshake: run_handshake(); break;
        case run_mode::fanout: run_fanout(); break;
        }
        shut_down();
    }

    // Results of the measured window.
    std::uint64_t messages = 0;
    std::uint64_t errors = 0;
    std::uint64_t established = 0;
    std::uint64_t failed = 0;
    double connect_seconds = 0;
    double window_seconds = 0;
    histogram latency;
    bool lost = false;               // fanout: a message asked for never reached every connection
    window_sample first, last;       // worker 0 only: the server and core samples around the window
    double rss_after = -1;

private:
    static constexpr std::size_t rbuf_size = 256 * 1024;
    static constexpr std::uint64_t skip_threshold = 16 * 1024;

    // ---- setting up

    bool open_socket(connection& c) {
        auto sent_at = std::move(c.sent_at);
        c = connection{};
        c.sent_at = std::move(sent_at);
        c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0) return false;
        const int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(o_.port);
        inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
        if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
            ::close(c.fd);
            c.fd = -1;
            return false;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u32 = static_cast<std::uint32_t>(&c - conns_.data());
        epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
        c.state = conn_state::connecting;
        c.started = now_ns();
        return true;
    }

    void connect_all() {
        const auto t0 = now_ns();
        const auto deadline = t0 + seconds_to_ns(o_.connect_timeout);
        const int concurrency = std::max(1, o_.connect_concurrency / o_.threads);
        std::size_t next = 0;
        while (established + failed < conns_.size()) {
            while (next < conns_.size() && pending_ < concurrency) {
                if (open_socket(conns_[next])) ++pending_;
                else ++failed;
                ++next;
            }
            if (now_ns() > deadline) {
                std::fprintf(stderr, "duplex-loadgen: connecting timed out (%llu of %zu up)\n",
                             static_cast<unsigned long long>(established), conns_.size());
                for (auto& c : conns_)
                    if (c.state == conn_state::connecting || c.state == conn_state::upgrading) {
                        drop(c);
                        ++failed;
                    }
                break;
            }
            poll(10);
        }
        connect_seconds = double(now_ns() - t0) / 1e9;
    }

    // ---- the event loop

    void poll(int timeout_ms) {
        std::array<epoll_event, 512> events;
        const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
        if (n <= 0) return;
        now_ = now_ns();
        for (int i = 0; i < n; ++i) {
            auto& c = conns_[events[static_cast<std::size_t>(i)].data.u32];
            if (c.fd < 0) continue;
            const auto ev = events[static_cast<std::size_t>(i)].events;
            if (c.state == conn_state::connecting) {
                if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
                on_connected(c);
                if (c.fd < 0) continue;
            }
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
                on_readable(c, (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0);
            if (c.fd >= 0 && (ev & EPOLLOUT)) flush(c);
        }
    }

    void on_connected(connection& c) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            setup_failed(c);
            return;
        }
        if (o_.raw) {
            became_open(c);
            return;
        }
        c.state = conn_state::upgrading;
        if (::send(c.fd, s_.request.data(), s_.request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(s_.request.size()))
            setup_failed(c);
    }

    void setup_failed(connection& c) {
        drop(c);
        if (o_.mode == run_mode::handshake && start_ != 0) {
            ++errors;
            start_cycle(c);
        } else {
            --pending_;
            ++failed;
        }
    }

    void became_open(connection& c) {
        c.state = conn_state::open;
        if (o_.mode == run_mode::handshake && start_ != 0) {
            // One exchange and the close: the WebSocket closing handshake, or one record and a shutdown.
            if (o_.raw) {
                queue_frames(c, 1);
                c.want_close = true;
                flush(c);
            } else {
                send_close(c);
            }
            return;
        }
        --pending_;
        ++established;
    }

    // Reads until the socket is drained (a short read means it was, unless the peer's FIN is already
    // signalled: then read on to it), then sends the echoes' successors.
    void on_readable(connection& c, bool ending) {
        std::uint32_t completed = 0;
        for (;;) {
            // The bulk of a large payload is discarded in the kernel (MSG_TRUNC: TCP drops the bytes
            // without copying them out), so large messages cost the load generator no copy.
            const bool skip = c.in_payload && c.payload_left >= skip_threshold;
            const std::size_t wanted =
                skip ? static_cast<std::size_t>(std::min<std::uint64_t>(c.payload_left, std::uint64_t{1} << 30)) : rbuf_size;
            const ssize_t n = ::recv(c.fd, rbuf_.get(), wanted, skip ? MSG_TRUNC : 0);
            if (n > 0) {
                if (skip) {
                    c.payload_left -= static_cast<std::uint64_t>(n);
                    if (c.payload_left == 0 && !frame_done(c, completed)) return;
                } else if (!consume(c, rbuf_.get(), static_cast<std::size_t>(n), completed)) {
                    return;
                }
                if (static_cast<std::size_t>(n) < wanted && !ending) break;
            } else if (n == 0) {
                on_eof(c);
                return;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            } else if (errno == EINTR) {
                continue;
            } else {
                on_error(c);
                return;
            }
        }
        if (completed > 0 && c.state == conn_state::open && sending_) {
            queue_frames(c, completed);
            flush(c);
        }
    }

    // Parses what arrived; returns false when the connection went away meanwhile.
    bool consume(connection& c, const char* data, std::size_t size, std::uint32_t& completed) {
        if (c.state == conn_state::upgrading) {
            const std::size_t before = c.http.size();
            c.http.append(data, size);
            const auto end = c.http.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (c.http.size() > 16384) setup_failed(c);
                return c.fd >= 0;
            }
            if (!check_upgrade_response(c, std::string_view(c.http).substr(0, end + 4))) {
                setup_failed(c);
                return false;
            }
            const std::size_t head_in_chunk = end + 4 - before;
            std::string().swap(c.http);
            became_open(c);
            data += head_in_chunk;
            size -= head_in_chunk;
            if (c.fd < 0) return false;
        }
        const auto* p = reinterpret_cast<const std::uint8_t*>(data);
        const auto* const end = p + size;
        while (p != end) {
            if (c.in_payload) {
                const auto take = std::min<std::uint64_t>(c.payload_left, static_cast<std::uint64_t>(end - p));
                p += take;
                c.payload_left -= take;
                if (c.payload_left == 0 && !frame_done(c, completed)) return false;
                continue;
            }
            // Gather the header, straight from the buffer when it is all there.
            const std::uint8_t* h = p;
            std::size_t available = static_cast<std::size_t>(end - p);
            if (c.header_have > 0) {
                const auto take = std::min<std::size_t>(available, c.header.size() - c.header_have);
                std::memcpy(c.header.data() + c.header_have, p, take);
                h = c.header.data();
                available = c.header_have + take;
            }
            const std::size_t need = header_size(h, available);
            if (need == 0 || available < need) {
                if (c.header_have == 0) {
                    std::memcpy(c.header.data(), p, available);
                    c.header_have = static_cast<std::uint8_t>(available);
                } else {
                    c.header_have = static_cast<std::uint8_t>(available);
                }
                return true;  // everything in this chunk went into the header
            }
            p += need - c.header_have;
            c.header_have = 0;
            parse_header(c, h);
            if (c.payload_left == 0 && !frame_done(c, completed)) return false;
        }
        return true;
    }

    // Bytes the header at h occupies, or 0 when fewer bytes than that are available to tell.
    std::size_t header_size(const std::uint8_t* h, std::size_t available) const noexcept {
        if (records_) return available >= 4 ? 4 : 0;
        if (available < 2) return 0;
        const std::uint8_t len7 = h[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
    }

    void parse_header(connection& c, const std::uint8_t* h) const noexcept {
        c.in_payload = true;
        if (records_) {
            c.payload_left = (std::uint64_t{h[0]} << 24) | (std::uint64_t{h[1]} << 16) | (std::uint64_t{h[2]} << 8) | h[3];
            c.frame_fin = true;
            c.frame_op = 2;
            return;
        }
        c.frame_fin = (h[0] & 0x80) != 0;
        c.frame_op = h[0] & 0x0F;
        const std::uint8_t len7 = h[1] & 0x7F;
        std::uint64_t length = len7;
        if (len7 == 126) length = (std::uint64_t{h[2]} << 8) | h[3];
        else if (len7 == 127) {
            length = 0;
            for (int i = 0; i < 8; ++i) length = (length << 8) | h[2 + i];
        }
        c.payload_left = length;
        c.frame_length = length;
    }

    // A frame ended. Returns false when the connection went away.
    bool frame_done(connection& c, std::uint32_t& completed) {
        c.in_payload = false;
        if (c.frame_op == 0x8) {  // the server's close frame (its answer to ours, or its own)
            if (o_.mode != run_mode::handshake && !shutting_down_) ++errors;
            if (!c.close_sent) send_close(c);
            c.state = conn_state::closing;
            return true;
        }
        if (c.frame_op >= 0x8 || !c.frame_fin) return true;  // ping/pong (ignored) or a fragment
        if (c.state != conn_state::open) return true;
        if (o_.mode == run_mode::handshake) {  // raw: the record came back; the shutdown follows it
            return true;
        }
        if (o_.mode == run_mode::fanout) {
            delivered(c);
            return true;
        }
        if (c.in_flight > 0) {
            const auto sent = c.sent_at[c.ring_head];
            c.ring_head = (c.ring_head + 1) % static_cast<std::uint32_t>(o_.depth);
            --c.in_flight;
            if (measuring_) {
                latency.add(now_ - sent);
                ++messages;
            }
        }
        ++completed;
        return true;
    }

    bool check_upgrade_response(connection& c, std::string_view head) {
        if (!head.starts_with("HTTP/1.1 101")) {
            report_once("the server refused the upgrade: " + std::string(head.substr(0, head.find('\r'))));
            return false;
        }
        std::string lower(head);
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
        if (head.find(ws_accept) == std::string_view::npos) {
            report_once("the server's Sec-WebSocket-Accept is wrong");
            return false;
        }
        const auto ext = lower.find("\r\nsec-websocket-extensions:");
        const bool deflate = ext != std::string::npos &&
                             lower.substr(ext, lower.find("\r\n", ext + 2) - ext).find("permessage-deflate") != std::string::npos;
        if (deflate && !o_.compression) {
            report_once("the server negotiated permessage-deflate without being offered it");
            return false;
        }
        if (deflate) {
            // Our one pre-deflated frame used a 15-bit window: valid under a smaller one only when no
            // back-reference can reach that far, i.e. when the whole payload fits in the window.
            const auto wb = lower.find("client_max_window_bits=", ext);
            const int bits = wb == std::string::npos ? 15 : std::atoi(lower.c_str() + wb + 23);
            if (bits < 15 && o_.size > (std::size_t{1} << bits)) {
                report_once("the server asks for a " + std::to_string(bits) +
                            "-bit client window, smaller than the message; not supported");
                return false;
            }
        }
        if (o_.compression) {
            int expected = -1;
            s_.negotiated.compare_exchange_strong(expected, deflate ? 1 : 0);
        }
        c.deflate = deflate;
        return true;
    }

    void report_once(const std::string& what) {
        if (!reported_) std::fprintf(stderr, "duplex-loadgen: %s\n", what.c_str());
        reported_ = true;
    }

    // ---- sending

    const frame_train& train(const connection& c) const noexcept { return c.deflate ? s_.compressed : s_.plain; }

    void queue_frames(connection& c, std::uint32_t k) {
        if (o_.mode == run_mode::echo) {
            for (std::uint32_t i = 0; i < k && c.in_flight < static_cast<std::uint32_t>(o_.depth); ++i) {
                c.sent_at[(c.ring_head + c.in_flight) % static_cast<std::uint32_t>(o_.depth)] = now_;
                ++c.in_flight;
            }
        }
        c.tx_pending += std::uint64_t{k} * train(c).frame_size;
    }

    void flush(connection& c) {
        switch (bench::send_train(c.fd, train(c), c.tx_pending, c.tx_offset)) {
        case bench::train_sent::all: break;
        case bench::train_sent::blocked: return;  // the socket is full; EPOLLOUT brings us back
        case bench::train_sent::failed: on_error(c); return;
        }
        if (c.want_close && !c.close_sent) {
            if (o_.raw) {
                ::shutdown(c.fd, SHUT_WR);
                c.close_sent = true;
                c.state = conn_state::closing;
            } else {
                send_close(c);
            }
        }
    }

    void send_close(connection& c) {
        if (c.tx_pending > 0) {
            c.want_close = true;  // after the frame in progress
            return;
        }
        if (o_.raw) {
            ::shutdown(c.fd, SHUT_WR);
        } else if (::send(c.fd, s_.close_frame.data(), s_.close_frame.size(), MSG_NOSIGNAL) < 0) {
            on_error(c);
            return;
        }
        c.close_sent = true;
        c.state = conn_state::closing;
    }

    // ---- endings

    void on_eof(connection& c) {
        if (c.state == conn_state::connecting || c.state == conn_state::upgrading) {
            setup_failed(c);
            return;
        }
        const bool clean = c.close_sent;
        drop(c);
        if (o_.mode == run_mode::handshake && sending_) {
            if (clean) cycle_done(c);
            else ++errors;
            start_cycle(c);
            return;
        }
        if (!clean && !shutting_down_) ++errors;
    }

    void on_error(connection& c) {
        if (c.state == conn_state::connecting || c.state == conn_state::upgrading) {
            setup_failed(c);
            return;
        }
        drop(c);
        if (!shutting_down_) ++errors;
        if (o_.mode == run_mode::handshake && sending_) start_cycle(c);
    }

    void drop(connection& c) {
        if (c.fd >= 0) ::close(c.fd);  // closing also takes it out of the epoll set
        c.fd = -1;
        c.state = conn_state::closed;
    }

    // ---- modes

    void measure_window(std::uint64_t from, std::uint64_t to) {
        while (now_ns() < from) poll(wait_ms(from));
        if (index_ == 0) first = take_sample(o_);
        const auto t0 = now_ns();
        latency.clear();
        messages = 0;
        errors = 0;
        measuring_ = true;
        while (now_ns() < to) poll(wait_ms(to));
        measuring_ = false;
        if (index_ == 0) last = take_sample(o_);
        window_seconds = double(now_ns() - t0) / 1e9;
    }

    static int wait_ms(std::uint64_t until) {
        const auto now = now_ns();
        if (now >= until) return 0;
        return static_cast<int>(std::min<std::uint64_t>((until - now) / 1'000'000 + 1, 50));
    }

    void run_echo() {
        sending_ = true;
        now_ = now_ns();
        for (auto& c : conns_) {
            if (c.state != conn_state::open) continue;
            queue_frames(c, static_cast<std::uint32_t>(o_.depth));
            flush(c);
        }
        const auto from = start_ + seconds_to_ns(o_.warmup);
        measure_window(from, from + seconds_to_ns(o_.duration));
        sending_ = false;
    }

    void run_idle() {
        const auto settle = start_ + seconds_to_ns(o_.warmup);
        while (now_ns() < settle) poll(wait_ms(settle));
        if (index_ == 0 && o_.server_pid > 0) rss_after = process_rss_bytes(o_.server_pid);
        if (index_ == 0) std::printf("idle: %llu connections held\n", static_cast<unsigned long long>(established));
        std::fflush(stdout);
        const auto until = settle + seconds_to_ns(o_.duration);
        while (now_ns() < until) poll(wait_ms(until));
    }

    void start_cycle(connection& c) {
        if (!sending_) return;
        if (!open_socket(c)) {
            ++errors;
            return;
        }
        c.started = now_;
    }

    void cycle_done(const connection& c) {
        if (!measuring_) return;
        ++messages;
        latency.add(now_ - c.started);
    }

    void run_handshake() {
        // The connections opened for the set-up are the first cycle's.
        sending_ = true;
        now_ = now_ns();
        for (auto& c : conns_) {
            if (c.state != conn_state::open) continue;
            c.started = now_;
            became_open(c);
        }
        const auto from = start_ + seconds_to_ns(o_.warmup);
        measure_window(from, from + seconds_to_ns(o_.duration));
        sending_ = false;
    }

    // ---- fan-out

    void run_fanout() {
        // The server may take in the last connections a little after they see themselves open (a raw
        // server accepts them later, the app subscribes them once its 101 has gone): a connection that
        // missed the first message would never catch up with the others' count.
        const auto settled = now_ns() + seconds_to_ns(0.3);
        while (now_ns() < settled) poll(wait_ms(settled));
        // A connection is at most `depth` messages ahead of the slowest: the ring counts them apart.
        reached_.assign(std::bit_ceil(static_cast<std::size_t>(o_.depth) + 1), 0);
        sending_ = true;
        now_ = now_ns();
        request_more();
        const auto from = now_ + seconds_to_ns(o_.warmup);
        measure_window(from, from + seconds_to_ns(o_.duration));
        sending_ = false;
        // Whatever was asked for reaches every connection, unless a message was lost.
        const auto give_up = now_ns() + seconds_to_ns(3);
        while (fully_delivered_ < requested_ && now_ns() < give_up) poll(wait_ms(give_up));
        if (fully_delivered_ < requested_) {
            report_once("a message asked for did not reach every connection (dropped, or a connection closed)");
            lost = true;
        }
    }

    // A message of the expected size reached `c`. When `c` was the last to get it, the slowest
    // connection has moved on and there is room for more.
    void delivered(connection& c) {
        if (c.frame_op != 0x2 || c.frame_length != o_.size) {
            report_once("a frame that is not a binary message of --size bytes");
            ++errors;
            return;
        }
        if (measuring_) ++messages;
        auto& reached = reached_[c.received++ & (reached_.size() - 1)];
        if (++reached < established) return;
        reached = 0;
        ++fully_delivered_;
        request_more();
    }

    // Keeps `depth` messages on their way to the slowest connection, asked for `batch` at a time. The
    // requests are a few bytes each and at most depth / batch of them are unanswered, so they always
    // fit in the socket.
    void request_more() {
        auto& c = conns_[0];
        while (sending_ && requested_ + std::uint64_t(o_.batch) <= fully_delivered_ + std::uint64_t(o_.depth)) {
            const auto& request = s_.publish_request;
            if (c.fd < 0 || ::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
                report_once("could not ask the server for more messages");
                ++errors;
                sending_ = false;
                return;
            }
            requested_ += std::uint64_t(o_.batch);
        }
    }

    // Stops sending, closes every connection cleanly where it can within two seconds, then drops the rest.
    void shut_down() {
        sending_ = false;
        shutting_down_ = true;
        for (auto& c : conns_) {
            if (c.fd < 0) continue;
            if (c.state == conn_state::open) {
                c.want_close = true;
                if (c.tx_pending == 0) send_close(c);
            } else if (c.state != conn_state::closing) {
                drop(c);
            }
        }
        const auto deadline = now_ns() + seconds_to_ns(2.0);
        for (;;) {
            const bool any = std::any_of(conns_.begin(), conns_.end(), [](const connection& c) { return c.fd >= 0; });
            if (!any || now_ns() >= deadline) break;
            poll(wait_ms(deadline));
        }
        for (auto& c : conns_) drop(c);
    }

    shared_state& s_;
    const options& o_;
    // Length-prefixed records (the raw echo's); the raw fan-out server writes WebSocket frames.
    const bool records_ = o_.raw && o_.mode != run_mode::fanout;
    int index_;
    std::vector<connection> conns_;
    std::unique_ptr<char[]> rbuf_;
    int epfd_ = -1;
    int pending_ = 0;
    std::uint64_t now_ = 0;
    std::uint64_t start_ = 0;
    bool sending_ = false;
    bool measuring_ = false;
    bool shutting_down_ = false;
    bool reported_ = false;
    // fanout: how many connections got each message in flight (a ring indexed by message number), the
    // messages every connection got, and the messages asked for.
    std::vector<std::uint32_t> reached_;
    std::uint64_t fully_delivered_ = 0;
    std::uint64_t requested_ = 0;
};

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    // Every phase is bounded; the watchdog ends the process should one of them hang anyway.
    alarm(static_cast<unsigned>(o.connect_timeout + o.warmup + o.duration + 20));

    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    if (files.rlim_cur < static_cast<rlim_t>(o.connections) + 64) {
        std::fprintf(stderr, "duplex-loadgen: %d connections need more open files than ulimit -n allows (%llu)\n",
                     o.connections, static_cast<unsigned long long>(files.rlim_cur));
        return 1;
    }

    shared_state shared;
    shared.opt = &o;
    const auto payload = make_payload(o.size, o.text);
    const std::string frame = o.raw ? make_raw_record(payload) : make_ws_frame(o.text ? 0x1 : 0x2, false, payload);
    shared.plain = frame_train(frame, train_copies(frame.size(), o.depth));
    shared.close_frame = make_ws_frame(0x8, false, std::string_view("\x03\xE8", 2));  // 1000, normal closure
    shared.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(ws_key) +
                     "\r\nSec-WebSocket-Version: 13\r\n";
    if (o.compression) {
        shared.request += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n";
        // Built for the largest window now; a server asking for a smaller one gets it below, before any send.
        const auto deflated = deflate_message(payload, 15);
        shared.compressed = frame_train(make_ws_frame(o.text ? 0x1 : 0x2, true, deflated),
                                        train_copies(deflated.size() + 14, o.depth));
    }
    shared.request += "\r\n";
    shared.publish_request = make_ws_frame(0x1, false, std::to_string(o.batch));

    const char* mode_name = o.mode == run_mode::echo ? "echo" : o.mode == run_mode::idle ? "idle"
                          : o.mode == run_mode::handshake ? "handshake" : "fanout";
    std::printf("duplex-loadgen: %s %s://%s:%u%s, %d connections, %zu B %s, depth %d, %d thread(s), warm-up %.1f s, "
                "%.1f s measured\n",
                mode_name, o.raw ? "tcp" : "ws", o.host.c_str(), o.port, o.raw ? "" : o.path.c_str(), o.connections,
                o.size, o.mode == run_mode::fanout ? "binary" : o.raw ? "records" : o.text ? "text" : "binary", o.depth, o.threads, o.warmup, o.duration);
    std::fflush(stdout);

    std::vector<std::unique_ptr<worker>> workers;
    try {
        for (int t = 0; t < o.threads; ++t) {
            const int share = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
            workers.push_back(std::make_unique<worker>(shared, t, share));
        }
        if (o.mode == run_mode::idle && o.server_pid > 0) shared.rss_before = process_rss_bytes(o.server_pid);
        std::vector<std::thread> threads;
        for (int t = 1; t < o.threads; ++t) threads.emplace_back([&, t] { workers[static_cast<std::size_t>(t)]->run(); });
        workers[0]->run();
        for (auto& th : threads) th.join();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "duplex-loadgen: %s\n", e.what());
        return 1;
    }

    std::uint64_t messages = 0, errors = 0, established = 0, failed = 0;
    bool lost = false;
    double rate = 0;
    histogram latency;
    for (const auto& w : workers) {
        messages += w->messages;
        errors += w->errors;
        established += w->established;
        failed += w->failed;
        lost = lost || w->lost;
        if (w->window_seconds > 0) rate += double(w->messages) / w->window_seconds;
        latency.merge(w->latency);
    }
    const auto& w0 = *workers[0];
    const double window = double(w0.last.at - w0.first.at) / 1e9;
    const double server_cpu_us =
        (w0.first.server_cpu >= 0 && w0.last.server_cpu >= 0) ? w0.last.server_cpu - w0.first.server_cpu : -1;
    const double server_cpu_pct = server_cpu_us >= 0 && window > 0 ? server_cpu_us / (window * 1e6) * 100 : -1;
    const double loadgen_cpu_pct = window > 0 ? (w0.last.self_cpu - w0.first.self_cpu) / (window * 1e6) * 100 : -1;
    const double server_core_pct = busy_pct(w0.first.server_core, w0.last.server_core);
    const double loadgen_core_pct = busy_pct(w0.first.loadgen_core, w0.last.loadgen_core);
    // Messages in worker 0's window, at the measured rate: what the server's CPU time was spent on.
    const double window_messages = rate * window;

    std::string compression = "off";
    if (o.compression) {
        const int negotiated = shared.negotiated.load();
        compression = negotiated == 1 ? "negotiated" : "not_negotiated";
        std::printf("compression: permessage-deflate %s\n", negotiated == 1 ? "negotiated" : "not negotiated");
    }
    if (failed > 0) std::printf("warning: %llu connection(s) failed to open\n", static_cast<unsigned long long>(failed));

    std::string result = std::string("RESULT mode=") + mode_name + " protocol=" + (o.raw ? "raw" : "ws") +
                         " connections=" + std::to_string(o.connections) + " established=" + std::to_string(established) +
                         " failed=" + std::to_string(failed);
    const auto add = [&](const char* key, double value, int decimals) {
        result += std::string(" ") + key + "=" + (value < 0 ? std::string("na") : fixed(value, decimals));
    };
    if (o.mode == run_mode::idle) {
        const double before = shared.rss_before;
        const double delta = before >= 0 && w0.rss_after >= 0 ? w0.rss_after - before : -1;
        result += " lost=" + std::to_string(errors);
        add("connect_s", w0.connect_seconds, 3);
        add("server_rss_before_kb", before < 0 ? -1 : before / 1024, 0);
        add("server_rss_after_kb", w0.rss_after < 0 ? -1 : w0.rss_after / 1024, 0);
        add("server_bytes_per_conn", delta >= 0 && established > 0 ? delta / double(established) : -1, 0);
        std::printf("%s\n", result.c_str());
        return failed > 0 ? 1 : 0;
    }
    const bool fanout = o.mode == run_mode::fanout, carries_payload = o.mode == run_mode::echo || fanout;
    // What a unit of work is: an echoed message, a handshake, or a message delivered to one connection.
    const std::string unit = o.mode == run_mode::echo ? "msg" : fanout ? "delivery" : "handshake";
    const double mb_per_s = carries_payload ? rate * double(o.size) / 1e6 : 0;
    result += " size=" + std::to_string(o.size) + " depth=" + std::to_string(o.depth) + " payload=" +
              (fanout ? "binary" : o.raw ? "raw" : o.text ? "text" : "binary") + " compression=" + compression +
              " messages=" + std::to_string(messages) + " errors=" + std::to_string(errors);
    if (fanout) result += " batch=" + std::to_string(o.batch) + " lost=" + std::to_string(lost ? 1 : 0);
    add("window_s", window, 3);
    add(o.mode == run_mode::echo ? "msgs_per_s" : fanout ? "deliveries_per_s" : "handshakes_per_s", rate, 0);
    if (carries_payload) add("mb_per_s", mb_per_s, 2);
    if (!fanout) {  // a delivery's latency is not measured: the fan-out's figure is the server's CPU
        add("p50_us", latency.quantile_us(0.50), 1);
        add("p99_us", latency.quantile_us(0.99), 1);
        add("p999_us", latency.quantile_us(0.999), 1);
    }
    add("server_cpu_pct", server_cpu_pct, 1);
    add(("server_cpu_us_per_" + unit).c_str(), server_cpu_us >= 0 && window_messages > 0 ? server_cpu_us / window_messages : -1, 3);
    if (carries_payload)
        add("server_cpu_us_per_mb", server_cpu_us >= 0 && mb_per_s > 0 ? server_cpu_us / (mb_per_s * window) : -1, 1);
    add("loadgen_cpu_pct", loadgen_cpu_pct, 1);
    add(("loadgen_cpu_us_per_" + unit).c_str(), window_messages > 0 ? (w0.last.self_cpu - w0.first.self_cpu) / window_messages : -1, 3);
    add("server_core_busy_pct", server_core_pct, 1);
    add("loadgen_core_busy_pct", loadgen_core_pct, 1);
    std::printf("%s\n", result.c_str());
    return messages > 0 && !lost ? 0 : 1;
}
