// What the client benchmark programs share: their command line, the measured window (client CPU time,
// allocations, messages) and the RESULT line benchmarks/run parses.
#pragma once

#include "alloc_count.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

struct settings {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    std::string mode = "receive";  // per program: receive, receive_message, sync, coro, latency, connect
    std::size_t size = 64;
    bool text = false;
    double warmup = 1, duration = 3;  // seconds
};

inline settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view name = argv[i];
        const std::string value = argv[i + 1];
        if (name == "--port") s.port = static_cast<unsigned short>(std::atoi(value.c_str()));
        else if (name == "--host") s.host = value;
        else if (name == "--mode") s.mode = value;
        else if (name == "--size") s.size = std::strtoull(value.c_str(), nullptr, 10);
        else if (name == "--text") s.text = value == "1";
        else if (name == "--warmup") s.warmup = std::atof(value.c_str());
        else if (name == "--duration") s.duration = std::atof(value.c_str());
    }
    return s;
}

// The path to ask the frame blaster for (benchmarks/client/blaster.cpp).
inline std::string target_of(const settings& s) {
    if (s.mode == "latency") return "/rr?size=" + std::to_string(s.size);
    if (s.mode == "connect") return "/";
    return "/blast?size=" + std::to_string(s.size) + "&text=" + (s.text ? "1" : "0");
}

inline double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// The measured window: started after the warm-up, counting units (messages, round trips, connects).
class window {
public:
    explicit window(const settings& s)
        : settings_(s), began_(std::chrono::steady_clock::now()), each_(s.mode == "connect" || s.mode == "latency") {}

    // Called after each unit; false once the window is over.
    bool count(std::chrono::steady_clock::duration latency = {}) {
        if (!measuring_) {
            if ((++checks_ & 63) != 0 && !each_) return true;
            if (std::chrono::steady_clock::now() - began_ < seconds(settings_.warmup)) return true;
            measuring_ = true;
            units_ = 0;
            latencies_.reserve(1 << 20);
            cpu_ = cpu_seconds();
            allocations_ = allocations.load();
            began_ = std::chrono::steady_clock::now();
            return true;
        }
        ++units_;
        if (each_ && latencies_.size() < latencies_.capacity()) latencies_.push_back(latency);
        if ((units_ & 63) != 0 && !each_) return true;
        const auto now = std::chrono::steady_clock::now();
        if (now - began_ < seconds(settings_.duration)) return true;
        finish(now);
        return false;
    }

    void print(std::string_view client) const {
        std::printf("RESULT client=%.*s mode=%s size=%zu text=%d units=%zu seconds=%.3f units_per_s=%.1f "
                    "cpu_ns_per_unit=%.1f allocs_per_unit=%.4f p50_us=%.2f p99_us=%.2f\n",
                    static_cast<int>(client.size()), client.data(), settings_.mode.c_str(), settings_.size,
                    settings_.text ? 1 : 0, units_, wall_, units_ / wall_, cpu_per_unit_ * 1e9, allocs_per_unit_,
                    p50_, p99_);
        std::fflush(stdout);
    }

private:
    static std::chrono::duration<double> seconds(double s) { return std::chrono::duration<double>(s); }

    void finish(std::chrono::steady_clock::time_point now) {
        wall_ = std::chrono::duration<double>(now - began_).count();
        // the allocations first: reading the clock allocates nothing, but sorting below would not matter
        allocs_per_unit_ = static_cast<double>(allocations.load() - allocations_) / static_cast<double>(units_);
        cpu_per_unit_ = (cpu_seconds() - cpu_) / static_cast<double>(units_);
        if (!latencies_.empty()) {
            std::sort(latencies_.begin(), latencies_.end());
            auto at = [&](double q) {
                return std::chrono::duration<double, std::micro>(latencies_[static_cast<std::size_t>(q * (latencies_.size() - 1))]).count();
            };
            p50_ = at(0.5);
            p99_ = at(0.99);
        }
    }

    const settings& settings_;
    std::chrono::steady_clock::time_point began_;
    bool each_;  // connects and round trips: the clock is read after each (they take microseconds)
    bool measuring_ = false;
    std::size_t checks_ = 0, units_ = 0, allocations_ = 0;
    std::vector<std::chrono::steady_clock::duration> latencies_;
    double cpu_ = 0, wall_ = 0, cpu_per_unit_ = 0, allocs_per_unit_ = 0, p50_ = 0, p99_ = 0;
};

}  // namespace bench
