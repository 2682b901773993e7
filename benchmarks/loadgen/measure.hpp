// What the TLS load generators (duplex-loadgen-tls over HTTP/1.1, duplex-loadgen-h2 over HTTP/2) share:
// their options, reading the server's CPU time and the cores' load from /proc, the masked client frame built once, and
// the count of the messages server frames complete. Each program defines usage() for number().
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace loadgen {

[[noreturn]] void usage(const char* why);

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

// ---------------------------------------------------------------- options

// The options both TLS load generators take; duplex-loadgen-h2 adds --streams-per-connection.
struct tls_options {
    std::string host = "127.0.0.1";
    std::string port;
    std::string path = "/ws";
    int connections = 16;  // WebSockets
    std::size_t size = 64;
    int depth = 1;
    double warmup = 1.0;
    double duration = 3.0;
    bool text = true;
    int server_pid = 0;
    int server_core = -1;
    int loadgen_core = -1;
};

// Parses argv into `o`; an option of the program's own goes to `extra(arg, value)`, which returns false
// for one it does not know either. `schemes` are the URL schemes accepted (e.g. "wss://").
template <class Extra>
void parse_tls_options(int argc, char** argv, tls_options& o, std::initializer_list<std::string_view> schemes,
                       Extra extra) {
    bool have_url = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage("an option is missing its value");
            return argv[++i];
        };
        if (arg == "--url") {
            std::string_view url = value();
            const auto scheme = std::find_if(schemes.begin(), schemes.end(), [&](auto s) { return url.starts_with(s); });
            if (scheme == schemes.end()) usage("--url must be wss://HOST:PORT/PATH");
            url.remove_prefix(scheme->size());
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
            if (value() != "echo") usage("only --mode echo is supported");
        } else if (!extra(arg, value)) usage(("unknown option " + std::string(arg)).c_str());
    }
    if (!have_url) usage("--url is required");
    if (o.connections < 1 || o.depth < 1) usage("counts must be >= 1");
    if (o.warmup < 0 || o.duration <= 0) usage("--duration must be > 0 and --warmup >= 0");
}

// ---------------------------------------------------------------- /proc (as in duplex-loadgen)

// utime + stime of a whole process, in microseconds; -1 when it cannot be read.
inline double process_cpu_us(int pid) {
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

inline double self_cpu_us() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + double(usage.ru_utime.tv_usec) +
           double(usage.ru_stime.tv_usec);
}

struct core_times {
    unsigned long long busy = 0, total = 0;
};

inline core_times read_core(int core) {
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

inline double busy_pct(const core_times& a, const core_times& b) {
    return b.total <= a.total ? -1 : 100.0 * double(b.busy - a.busy) / double(b.total - a.total);
}

struct sample {
    std::chrono::steady_clock::time_point at;
    std::uint64_t messages = 0;
    double server_cpu = -1, self_cpu = 0;
    core_times server_core, loadgen_core;
};

inline sample take_sample(std::uint64_t messages, int server_pid, int server_core, int loadgen_core) {
    sample x;
    x.at = std::chrono::steady_clock::now();
    x.messages = messages;
    if (server_pid > 0) x.server_cpu = process_cpu_us(server_pid);
    x.self_cpu = self_cpu_us();
    x.server_core = read_core(server_core);
    x.loadgen_core = read_core(loadgen_core);
    return x;
}

inline std::string fixed(double v, int decimals) {
    if (v < 0) return "na";
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, v);
    return text;
}

// ---------------------------------------------------------------- frames

// One masked client frame (FIN, `opcode`) carrying `payload`.
inline std::string client_frame(std::uint8_t opcode, const std::string& payload) {
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

// The benchmark's payload: `size` bytes of lowercase letters and spaces (valid UTF-8 for text messages).
inline std::string letters(std::size_t size) {
    std::string payload(size, 'a');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = "abcdefghijklmnopqrstuvwxyz "[i % 27];
    return payload;
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

// The window's figures, as `key=value` pairs for the RESULT line (the keys benchmarks/run reads).
inline std::string window_figures(const sample& first, const sample& last, std::size_t size,
                                  std::vector<std::uint32_t>& latencies_ns) {
    const double window = std::chrono::duration<double>(last.at - first.at).count();
    const auto messages = last.messages - first.messages;
    const double rate = window > 0 ? double(messages) / window : -1;
    const double mb_per_s = rate * double(size) / 1e6;
    const double server_cpu = first.server_cpu >= 0 && last.server_cpu >= 0 ? last.server_cpu - first.server_cpu : -1;
    const double self_cpu = last.self_cpu - first.self_cpu;
    auto& lat = latencies_ns;
    const auto quantile_us = [&](double q) -> double {
        if (lat.empty()) return -1;
        const auto k = static_cast<std::size_t>(q * double(lat.size() - 1));
        std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(k), lat.end());
        return lat[k] / 1e3;
    };
    std::string result = "messages=" + std::to_string(messages);
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
    return result;
}

}  // namespace loadgen
