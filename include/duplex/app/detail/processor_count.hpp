// How many CPUs this process may use, as .NET's Environment.ProcessorCount counts them: the CPUs of its
// affinity mask (sched_getaffinity: taskset, cpusets), lowered by a cgroup v2 CPU quota (cpu.max, e.g.
// docker --cpus) rounded up. std::thread::hardware_concurrency() counts the machine's CPUs instead, so a
// server given one CPU ran two workers contending for it.
#pragma once

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace duplex::detail {

// The CPUs a cgroup v2 "cpu.max" line allows ("QUOTA PERIOD", or "max PERIOD" for no limit), rounded
// up: "150000 100000" is 2. nullopt for no limit or a line that is not of that form.
inline std::optional<unsigned> cpus_of_quota(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
    const auto space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const auto quota_text = line.substr(0, space), period_text = line.substr(space + 1);
    if (quota_text == "max") return std::nullopt;
    unsigned long long quota = 0, period = 0;
    const auto q = std::from_chars(quota_text.data(), quota_text.data() + quota_text.size(), quota);
    const auto p = std::from_chars(period_text.data(), period_text.data() + period_text.size(), period);
    if (q.ec != std::errc{} || q.ptr != quota_text.data() + quota_text.size() || p.ec != std::errc{} ||
        p.ptr != period_text.data() + period_text.size() || quota == 0 || period == 0)
        return std::nullopt;
    return static_cast<unsigned>(std::max<unsigned long long>(1, (quota + period - 1) / period));
}

// The cgroup v2 directory of this process ("0::/path" in /proc/self/cgroup), under /sys/fs/cgroup.
inline std::string own_cgroup_directory() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("0::")) return "/sys/fs/cgroup" + line.substr(3);
    return {};
}

// The smallest quota of this process's cgroup and its ancestors (a parent's limit binds its children).
inline std::optional<unsigned> cgroup_cpu_limit() {
    std::string directory = own_cgroup_directory();
    if (directory.empty()) return std::nullopt;
    std::optional<unsigned> limit;
    for (;;) {
        std::ifstream in(directory + "/cpu.max");
        std::string line;
        if (in && std::getline(in, line))
            if (const auto cpus = cpus_of_quota(line)) limit = std::min(limit.value_or(*cpus), *cpus);
        if (directory.size() <= std::string_view("/sys/fs/cgroup").size()) break;
        directory.erase(directory.rfind('/'));
    }
    return limit;
}

inline unsigned processor_count() {
    unsigned count = std::max(1u, std::thread::hardware_concurrency());
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) count = std::max(1, CPU_COUNT(&set));
#endif
    if (const auto quota = cgroup_cpu_limit()) count = std::min(count, *quota);
    return count;
}

}  // namespace duplex::detail
