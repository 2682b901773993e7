// duplex-loadgen-tls — the echo load generator over wss:// (TLS through asio::ssl), for the wss benchmark:
// duplex-echo over https:// against Boost.Beast's ssl_stream echo.
//
//   duplex-loadgen-tls --url wss://127.0.0.1:PORT/ws [--connections N] [--size BYTES] [--depth N]
//                      [--warmup S] [--duration S] [--text|--binary] [--server-pid PID]
//                      [--server-core N] [--loadgen-core N]
//
// Echo mode only. Each connection connects, makes its TLS handshake (no certificate check: the servers
// are local and throwaway), upgrades, then keeps `depth` messages in flight: every read is parsed only
// far enough to count the complete messages it ends (the server may fragment them), and that many new
// frames go back in one write from a buffer built and masked once at start-up. One thread; the TLS work
// itself is why it is slower than duplex-loadgen, which is why the figure of merit is the server's CPU
// time per message, not the rate.
//
// Its last line is machine-readable, as duplex-loadgen's: `RESULT mode=echo protocol=wss ... msgs_per_s=...
// server_cpu_us_per_msg=...` (the keys benchmarks/run reads).
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

struct options {
    std::string host = "127.0.0.1";
    std::string port;
    std::string path = "/ws";
    int connections = 16;
    std::size_t size = 64;
    int depth = 1;
    double warmup = 1.0;
    double duration = 3.0;
    bool text = true;
    int server_pid = 0;
    int server_core = -1;
    int loadgen_core = -1;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "duplex-loadgen-tls: %s\n"
                 "usage: duplex-loadgen-tls --url wss://HOST:PORT/PATH [--connections N] [--size BYTES] [--depth N]\n"
                 "       [--warmup S] [--duration S] [--text|--binary] [--server-pid PID] [--server-core N]\n"
                 "       [--loadgen-core N]\n",
                 why);
    std::exit(2);
}

template <class T>
T number(std::string_view text, const char* what) {
    if constexpr (std::is_floating_point_v<T>) {
        try {
            std::size_t used = 0;
            const T value = static_cast<T>(std::stod(std::string(text), &used));
            if (used != text.size()) usage(what);
            return value;
        } catch (const std::exception&) {
            usage(what);
        }
    } else {
        T value{};
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size()) usage(what);
        return value;
    }
}

options parse_options(int argc, char** argv) {
    options o;
    bool have_url = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage("an option is missing its value");
            return argv[++i];
        };
        if (arg == "--url") {
            std::string_view url = value();
            if (!url.starts_with("wss://")) usage("--url must be wss://HOST:PORT/PATH");
            url.remove_prefix(6);
            const auto slash = url.find('/');
            const auto authority = url.substr(0, slash);
            o.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
            const auto colon = authority.rfind(':');
            if (colon == std::string_view::npos) usage("--url needs a port");
            o.host = std::string(authority.substr(0, colon));
            o.port = std::string(authority.substr(colon + 1));
            have_url = true;
        } else if (arg == "--connections") o.connections = number<int>(value(), "bad --connections");
        else if (arg == "--size") o.size = number<std::size_t>(value(), "bad --size");
        else if (arg == "--depth") o.depth = number<int>(value(), "bad --depth");
        else if (arg == "--warmup") o.warmup = number<double>(value(), "bad --warmup");
        else if (arg == "--duration") o.duration = number<double>(value(), "bad --duration");
        else if (arg == "--text") o.text = true;
        else if (arg == "--binary") o.text = false;
        else if (arg == "--server-pid") o.server_pid = number<int>(value(), "bad --server-pid");
        else if (arg == "--server-core") o.server_core = number<int>(value(), "bad --server-core");
        else if (arg == "--loadgen-core") o.loadgen_core = number<int>(value(), "bad --loadgen-core");
        else if (arg == "--mode") {
            if (value() != "echo") usage("duplex-loadgen-tls has only --mode echo");
        } else usage(("unknown option " + std::string(arg)).c_str());
    }
    if (!have_url) usage("--url is required");
    if (o.connections < 1 || o.depth < 1) usage("counts must be >= 1");
    if (o.warmup < 0 || o.duration <= 0) usage("--duration must be > 0 and --warmup >= 0");
    return o;
}

// ---------------------------------------------------------------- /proc (as in duplex-loadgen)

// utime + stime of a whole process, in microseconds; -1 when it cannot be read.
double process_cpu_us(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return -1;
    const auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream fields(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0;
    for (int index = 0; fields >> field; ++index) {
        if (index == 11) utime = std::stoull(field);
        if (index == 12) return double(utime + std::stoull(field)) * 1e6 / double(sysconf(_SC_CLK_TCK));
    }
    return -1;
}

double self_cpu_us() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + double(usage.ru_utime.tv_usec) +
           double(usage.ru_stime.tv_usec);
}

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
    return b.total <= a.total ? -1 : 100.0 * double(b.busy - a.busy) / double(b.total - a.total);
}

struct sample {
    steady::time_point at;
    std::uint64_t messages = 0;
    double server_cpu = -1, self_cpu = 0;
    core_times server_core, loadgen_core;
};

// ---------------------------------------------------------------- frames

// One masked client frame (FIN, `opcode`) carrying `payload`.
std::string client_frame(std::uint8_t opcode, const std::string& payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    const auto n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xFF));
    } else {
        f.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>((std::uint64_t(n) >> shift) & 0xFF));
    }
    const std::array<unsigned char, 4> key{0x37, 0xfa, 0x21, 0x3d};
    f.append(reinterpret_cast<const char*>(key.data()), key.size());
    for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    return f;
}

// Counts the messages that server frames complete, across reads: only headers are looked at.
class frame_counter {
public:
    // The number of messages (data frames with FIN) that end within `data`.
    std::size_t feed(const unsigned char* data, std::size_t size) {
        std::size_t completed = 0;
        while (size > 0) {
            if (payload_left_ > 0) {
                const auto skip = std::min<std::uint64_t>(payload_left_, size);
                payload_left_ -= skip;
                data += skip;
                size -= static_cast<std::size_t>(skip);
                if (payload_left_ == 0 && ends_message_) ++completed;
                continue;
            }
            while (size > 0 && header_have_ < header_needed()) {
                header_[header_have_++] = *data++;
                --size;
            }
            if (header_have_ < header_needed()) break;
            const auto length7 = header_[1] & 0x7F;
            std::uint64_t length = length7;
            if (length7 == 126) length = (std::uint64_t(header_[2]) << 8) | header_[3];
            if (length7 == 127) {
                length = 0;
                for (int i = 2; i < 10; ++i) length = (length << 8) | header_[i];
            }
            const auto opcode = header_[0] & 0x0F;
            ends_message_ = (header_[0] & 0x80) != 0 && opcode < 8;
            header_have_ = 0;
            payload_left_ = length;
            if (length == 0 && ends_message_) ++completed;
        }
        return completed;
    }

private:
    std::size_t header_needed() const noexcept {
        if (header_have_ < 2) return 2;
        const auto length7 = header_[1] & 0x7F;
        return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((header_[1] & 0x80) ? 4 : 0);
    }

    std::array<unsigned char, 14> header_{};
    std::size_t header_have_ = 0;
    std::uint64_t payload_left_ = 0;
    bool ends_message_ = false;
};

// ---------------------------------------------------------------- the run

struct shared_state {
    options o;
    std::string train;       // `depth` copies of the message's frame, back to back
    std::size_t frame_size = 0;
    std::string request;
    std::uint64_t messages = 0;
    std::uint64_t errors = 0;
    int established = 0, failed = 0;
    bool measuring = false, stopping = false;
    std::vector<std::uint32_t> latencies_ns;  // of messages completed inside the window
};

asio::awaitable<void> run_connection(shared_state& s, asio::ssl::context& tls, tcp::endpoint endpoint,
                                     asio::steady_timer& start) {
    auto executor = co_await asio::this_coro::executor;
    asio::ssl::stream<tcp::socket> stream(executor, tls);
    auto [connect_ec] = co_await stream.next_layer().async_connect(endpoint, nothrow);
    if (!connect_ec) stream.next_layer().set_option(tcp::no_delay(true));
    std::error_code ec = connect_ec;
    if (!ec) {
        auto [handshake_ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, nothrow);
        ec = handshake_ec;
    }
    if (!ec) {
        auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(s.request), nothrow);
        ec = write_ec;
    }
    std::string head;
    std::vector<unsigned char> buffer(64 * 1024);
    while (!ec && head.find("\r\n\r\n") == std::string::npos) {
        auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(buffer), nothrow);
        ec = read_ec;
        head.append(reinterpret_cast<const char*>(buffer.data()), n);
    }
    if (ec || !head.starts_with("HTTP/1.1 101")) {
        ++s.failed;
        co_return;
    }
    ++s.established;
    co_await start.async_wait(nothrow);  // cancelled once every connection is up
    frame_counter counter;
    std::deque<steady::time_point> sent_at;
    const auto depth = static_cast<std::size_t>(s.o.depth);
    for (std::size_t i = 0; i < depth; ++i) sent_at.push_back(steady::now());
    {
        auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(s.train), nothrow);
        ec = write_ec;
    }
    while (!ec && !s.stopping) {
        auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(buffer), nothrow);
        ec = read_ec;
        const auto completed = counter.feed(buffer.data(), n);
        if (completed == 0) continue;
        const auto now = steady::now();
        for (std::size_t i = 0; i < completed && !sent_at.empty(); ++i) {
            if (s.measuring) {
                ++s.messages;
                s.latencies_ns.push_back(static_cast<std::uint32_t>(
                    std::min<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at.front()).count(),
                                        0xFFFFFFFF)));
            }
            sent_at.pop_front();
            sent_at.push_back(now);
        }
        if (ec || s.stopping) break;
        auto [write_ec, written] =
            co_await asio::async_write(stream, asio::buffer(s.train.data(), completed * s.frame_size), nothrow);
        ec = write_ec;
    }
    if (ec && !s.stopping) ++s.errors;
}

sample take_sample(const shared_state& s) {
    sample x;
    x.at = steady::now();
    x.messages = s.messages;
    if (s.o.server_pid > 0) x.server_cpu = process_cpu_us(s.o.server_pid);
    x.self_cpu = self_cpu_us();
    x.server_core = read_core(s.o.server_core);
    x.loadgen_core = read_core(s.o.loadgen_core);
    return x;
}

std::string fixed(double v, int decimals) {
    if (v < 0) return "na";
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, v);
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    shared_state s;
    s.o = parse_options(argc, argv);
    const auto& o = s.o;
    std::signal(SIGPIPE, SIG_IGN);
    alarm(static_cast<unsigned>(o.warmup + o.duration + 60));  // a hung phase ends the process

    std::string payload(o.size, 'a');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = "abcdefghijklmnopqrstuvwxyz "[i % 27];
    const auto frame = client_frame(o.text ? 0x1 : 0x2, payload);
    s.frame_size = frame.size();
    for (int i = 0; i < o.depth; ++i) s.train += frame;
    s.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n";
    s.latencies_ns.reserve(1 << 22);

    asio::ssl::context tls(asio::ssl::context::tls_client);
    tls.set_verify_mode(asio::ssl::verify_none);
    asio::io_context io(1);
    tcp::resolver resolver(io);
    const auto endpoint = *resolver.resolve(o.host, o.port).begin();
    asio::steady_timer start(io, steady::time_point::max());
    std::printf("duplex-loadgen-tls: echo wss://%s:%s%s, %d connections, %zu B %s, depth %d, warm-up %.1f s, %.1f s "
                "measured\n",
                o.host.c_str(), o.port.c_str(), o.path.c_str(), o.connections, o.size, o.text ? "text" : "binary",
                o.depth, o.warmup, o.duration);
    std::fflush(stdout);
    for (int i = 0; i < o.connections; ++i)
        asio::co_spawn(io, run_connection(s, tls, endpoint, start), asio::detached);

    sample first, last;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(io);
            const auto give_up = steady::now() + std::chrono::seconds(30);
            while (s.established + s.failed < o.connections && steady::now() < give_up) {
                timer.expires_after(std::chrono::milliseconds(10));
                co_await timer.async_wait(nothrow);
            }
            start.cancel();
            timer.expires_after(std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup)));
            co_await timer.async_wait(nothrow);
            s.measuring = true;
            first = take_sample(s);
            timer.expires_after(std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.duration)));
            co_await timer.async_wait(nothrow);
            last = take_sample(s);
            s.measuring = false;
            s.stopping = true;
            io.stop();
        },
        asio::detached);
    io.run();

    const double window = std::chrono::duration<double>(last.at - first.at).count();
    const auto messages = last.messages - first.messages;
    const double rate = window > 0 ? double(messages) / window : -1;
    const double mb_per_s = rate * double(o.size) / 1e6;
    const double server_cpu = first.server_cpu >= 0 && last.server_cpu >= 0 ? last.server_cpu - first.server_cpu : -1;
    const double self_cpu = last.self_cpu - first.self_cpu;
    auto& lat = s.latencies_ns;
    const auto quantile_us = [&](double q) -> double {
        if (lat.empty()) return -1;
        const auto k = static_cast<std::size_t>(q * double(lat.size() - 1));
        std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(k), lat.end());
        return lat[k] / 1e3;
    };
    if (s.failed > 0) std::printf("warning: %d connection(s) failed to open\n", s.failed);
    std::string result = "RESULT mode=echo protocol=wss connections=" + std::to_string(o.connections) +
                         " established=" + std::to_string(s.established) + " failed=" + std::to_string(s.failed) +
                         " size=" + std::to_string(o.size) + " depth=" + std::to_string(o.depth) +
                         " payload=" + (o.text ? "text" : "binary") + " compression=off messages=" +
                         std::to_string(messages) + " errors=" + std::to_string(s.errors);
    const auto add = [&](const char* key, double value, int decimals) {
        result += std::string(" ") + key + "=" + fixed(value, decimals);
    };
    add("window_s", window, 3);
    add("msgs_per_s", rate, 0);
    add("mb_per_s", mb_per_s, 2);
    add("p50_us", quantile_us(0.50), 1);
    add("p99_us", quantile_us(0.99), 1);
    add("p999_us", quantile_us(0.999), 1);
    add("server_cpu_pct", server_cpu >= 0 && window > 0 ? server_cpu / (window * 1e6) * 100 : -1, 1);
    add("server_cpu_us_per_msg", server_cpu >= 0 && messages > 0 ? server_cpu / double(messages) : -1, 3);
    add("server_cpu_us_per_mb", server_cpu >= 0 && mb_per_s > 0 ? server_cpu / (mb_per_s * window) : -1, 1);
    add("loadgen_cpu_pct", window > 0 ? self_cpu / (window * 1e6) * 100 : -1, 1);
    add("loadgen_cpu_us_per_msg", messages > 0 ? self_cpu / double(messages) : -1, 3);
    add("server_core_busy_pct", busy_pct(first.server_core, last.server_core), 1);
    add("loadgen_core_busy_pct", busy_pct(first.loadgen_core, last.loadgen_core), 1);
    std::printf("%s\n", result.c_str());
    return messages > 0 ? 0 : 1;
}
