// duplex-client's command line: what it means, read into the connect_options it gives and the few
// settings of the program itself. No I/O here but the usage text.
#pragma once

#include <duplex/client/connect_options.hpp>
#include <duplex/websocket/close_status.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace duplex::examples {

inline constexpr std::string_view client_usage = R"(usage: duplex-client [options] URL

Connects to URL (ws:// or wss://), sends each line of standard input as a text message and prints each
message received on a line of its own. At the end of the input (Ctrl-D on a terminal, or Ctrl-C) it
closes with 1000 and exits 0 once the server has answered the close.

  --binary                 send standard input in chunks as binary messages; write what arrives raw
  -H, --header 'Name: value'   add a request header (repeatable)
  --protocol NAME          offer a sub-protocol (repeatable, in order of preference)
  --compression            offer permessage-deflate
  --ca FILE                trust the certificate authorities in FILE (PEM) instead of the system's
  --insecure               accept any server certificate (for tests against throwaway servers)
  --ping-interval SECONDS  ping the server every SECONDS
  --close CODE[:REASON]    the close code (1000, 3000-4999…) and reason sent at the end of the input
  --proxy URL              connect through http://[user:password@]host:port (HTTP CONNECT),
                           socks5://… (SOCKS5, the server's name resolved here) or socks5h://…
                           (resolved by the proxy); by default https_proxy (wss://) or http_proxy
                           (ws://), else all_proxy, unless no_proxy lists the host
  --no-proxy               connect directly, whatever the environment says
  --http2                  ask for a WebSocket over HTTP/2 (RFC 8441; wss:// only, ALPN h2), falling
                           back to HTTP/1.1 when the server cannot
  --http2-only             HTTP/2 exactly, failing otherwise; with ws:// it is HTTP/2 with prior
                           knowledge (h2c)
  -v, --verbose            say on standard error how the connection opens and closes
  -h, --help               this text

Exit status: 0 after a clean close, 1 when the connection cannot be opened or fails, 2 for a wrong
command line, 3 when the server closes with a code other than 1000 (and other than --close's).
)";

struct client_command_line {
    std::string url;
    connect_options options;
    bool binary = false;
    bool verbose = false;
    bool help = false;
    close_status close_code = close_status::normal_closure;
    std::string close_reason;
};

namespace detail {

inline close_status parse_close_code(std::string_view text) {
    unsigned code = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
    if (ec != std::errc{} || end != text.data() + text.size() || code > 0xFFFF ||
        !ws::is_valid_wire_code(static_cast<std::uint16_t>(code)))
        throw std::invalid_argument("--close needs a code that may be sent: 1000-1003, 1007-1011 or 3000-4999");
    return static_cast<close_status>(code);
}

inline std::chrono::steady_clock::duration parse_seconds(std::string_view text) {
    double seconds = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (ec != std::errc{} || end != text.data() + text.size() || !(seconds > 0) || seconds > 86400)
        throw std::invalid_argument("--ping-interval needs a number of seconds above 0 (at most a day)");
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace detail

// Throws std::invalid_argument, saying what is wrong, for a command line that does not parse.
inline client_command_line parse_client_command_line(int argc, char** argv) {
    client_command_line out;
    bool no_proxy = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            out.help = true;
        } else if (arg == "--binary") {
            out.binary = true;
        } else if (arg == "-H" || arg == "--header") {
            const auto header = value();
            const auto colon = header.find(':');
            if (colon == std::string_view::npos || colon == 0)
                throw std::invalid_argument("-H needs 'Name: value', not '" + std::string(header) + "'");
            out.options.headers.add(std::string(header.substr(0, colon)),
                                    std::string(http::detail::trim_optional_whitespace(header.substr(colon + 1))));
        } else if (arg == "--protocol") {
            out.options.sub_protocols.emplace_back(value());
        } else if (arg == "--compression") {
            out.options.dangerous_deflate.emplace();
        } else if (arg == "--ca") {
            out.options.tls.ca_file = value();
        } else if (arg == "--insecure") {
            out.options.tls.verify_peer = false;
            out.options.tls.verify_host_name = false;
        } else if (arg == "--ping-interval") {
            out.options.keep_alive_interval = detail::parse_seconds(value());
        } else if (arg == "--close") {
            const auto close = value();
            const auto colon = close.find(':');
            out.close_code = detail::parse_close_code(close.substr(0, colon));
            if (colon != std::string_view::npos) out.close_reason = close.substr(colon + 1);
            if (out.close_reason.size() > ws::max_close_reason_size || !ws::is_valid_utf8(out.close_reason))
                throw std::invalid_argument("--close: a close reason is UTF-8 text of at most 123 bytes");
        } else if (arg == "--proxy") {
            out.options.proxy = value();
        } else if (arg == "--no-proxy") {
            no_proxy = true;
        } else if (arg == "--http2" || arg == "--http2-only") {
            out.options.http_version = http_version::http2;
            out.options.http_version_policy = arg == "--http2" ? http_version_policy::request_version_or_lower
                                                               : http_version_policy::request_version_exact;
        } else if (arg == "-v" || arg == "--verbose") {
            out.verbose = true;
        } else if (arg.starts_with('-') && arg.size() > 1) {
            throw std::invalid_argument("unknown option " + std::string(arg));
        } else if (out.url.empty()) {
            out.url = arg;
        } else {
            throw std::invalid_argument("one URL only (the second is '" + std::string(arg) + "')");
        }
    }
    if (out.url.empty() && !out.help) throw std::invalid_argument("a ws:// or wss:// URL is needed");
    out.options.use_environment_proxy = !no_proxy && out.options.proxy.empty();
    return out;
}

}  // namespace duplex::examples
