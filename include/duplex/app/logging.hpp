// The app host's log, ASP.NET's ILogger reduced to what a host needs: each event is one line with a
// level. By default the lines go to stderr as "<app name>: <level>: <message>"; a sink routes them
// elsewhere (a file, syslog, your own logger).
//
// What the host logs: handler failures before and after the upgrade (error; a WebSocket ended by its
// peer, e.g. a client that vanished or broke the protocol, at debug), start-up and shutdown
// (information, warning when shutdown_timeout cuts connections off), limits crossed (debug per request,
// warning when max_connections starts refusing), failed TLS handshakes (debug: scanners make many).
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace duplex {

enum class log_level { trace, debug, information, warning, error, critical, none };

constexpr std::string_view to_string(log_level level) noexcept {
    switch (level) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::information: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    case log_level::critical: return "critical";
    case log_level::none: return "none";
    }
    return "?";
}

// Called from any worker thread, possibly from several at once.
using log_sink = std::function<void(log_level level, std::string_view message)>;

struct logging_options {
    // Events below this are not formatted or passed on; log_level::none silences the host.
    log_level minimum_level = log_level::information;
    // Receives every event at or above minimum_level; empty: one line on stderr.
    log_sink sink{};
};

namespace detail {

// Writes `line` with one call, so that lines from several threads do not interleave.
inline void write_log_line(std::string_view app_name, log_level level, std::string_view message) {
    std::string line;
    line.reserve(app_name.size() + message.size() + 16);
    line.append(app_name).append(": ").append(to_string(level)).append(": ").append(message).push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace detail

}  // namespace duplex
