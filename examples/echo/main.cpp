// duplex-echo — the seed's sample app: its page at /, and at /ws a WebSocket that sends every message
// straight back, over http:// and ws://, https:// and wss://, or both at once.
//
//   duplex-echo [--urls URL[;URL…]] [--wwwroot DIR] [--compression] [--threads N] [--api awaitable|tokens|handlers]
//               [--buffer-size BYTES] [--receive-buffer-size BYTES]
//               [--cert FILE --key FILE [--handshake-timeout-ms N] [--http-protocols http1|http2|both]]
//               [--h2c] [--http2-limit NAME=VALUE]…                        (default http://localhost:5000)
//
// --threads sets the event loop's threads (default: one per CPU the process may use). --buffer-size sets the
// echo's buffer (default 4096, the seed's; allocated once per connection) and --receive-buffer-size the
// WebSocket's own read buffer (use_websockets' receive_buffer_size, default 4096): larger ones echo large
// messages in fewer, larger pieces with fewer reads, as benchmarks/run does for 16 KiB and 1 MiB messages.
//
// --api tokens runs the same echo written with completion handlers (callbacks) instead of co_await
// (duplex::examples::callback_echo); --api handlers runs it on the message-driven API
// (app.map_websocket, duplex::examples::echo_handlers: no coroutine and no buffer per idle connection,
// each message echoed whole); the default is the seed's awaitable echo.
//
// --compression accepts permessage-deflate (RFC 7692) when a client offers it. It is off by default:
// compressing secrets next to attacker-chosen data leaks them (CRIME/BREACH); an echo has no secrets.
//
// --cert (PEM: the certificate, then its intermediates) and --key (PEM, unencrypted) serve every https://
// URL, e.g. --urls "http://127.0.0.1:5000;https://127.0.0.1:5001"; an https:// URL without them is refused
// at start-up. --handshake-timeout-ms bounds each TLS handshake (default 10,000).
// examples/tls_echo/make-certs.sh DIR makes a throwaway CA and a certificate for 127.0.0.1 and localhost.
//
// HTTP/2: https:// URLs offer h2 and http/1.1 through ALPN (--http-protocols narrows that), and the page
// and /ws work over both; the WebSocket of an HTTP/2 connection is an RFC 8441 extended CONNECT. --h2c
// makes http:// URLs accept HTTP/2 with prior knowledge too. --http2-limit sets one field of
// app_options::http2_limits (max_concurrent_streams, max_header_list_size, initial_stream_window_size,
// connection_window_size, stream_reset_burst, stream_reset_rate, max_continuations, max_settings,
// max_consecutive_empty_data_frames, max_window_updates_per_data_frame, max_priority_frames_per_stream).
#include <duplex/duplex.hpp>

#include "echo.hpp"

#include <charconv>
#include <cstdint>
#include <type_traits>
#include <chrono>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <span>
#include <stdexcept>
#include <string_view>

namespace {

// The page installed beside the program (meson install: datadir/duplex/echo/wwwroot, found from the
// program's own location, so a moved or DESTDIR-staged tree still finds it), else the source tree's.
std::string default_wwwroot() {
    std::error_code ec;
    const auto program = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto installed = program.parent_path() / DUPLEX_ECHO_INSTALLED_WWWROOT;
        if (std::filesystem::is_directory(installed, ec)) return installed.lexically_normal().string();
    }
    return DUPLEX_ECHO_WWWROOT;
}

constexpr std::string_view usage =
    "usage: duplex-echo [--urls URL[;URL...]] [--threads N] [--wwwroot DIR] [--compression]\n"
    "                   [--api awaitable|tokens|handlers] [--buffer-size BYTES] [--receive-buffer-size BYTES]\n"
    "                   [--cert FILE --key FILE [--handshake-timeout-ms N] [--http-protocols http1|http2|both]]\n"
    "                   [--h2c] [--http2-limit NAME=VALUE]...\n"
    "Serves the sample page at / and an echo WebSocket at /ws (default http://localhost:5000).\n";

}  // namespace

int main(int argc, char** argv) {
    std::string wwwroot = default_wwwroot();
    bool compression = false;
    std::string_view api = "awaitable";
    duplex::https_options https;
    long long handshake_timeout_ms = 0;
    std::size_t buffer_size = 0;  // 0: the seed's 4 KiB array
    duplex::websocket_options websockets{.keep_alive_interval = std::chrono::minutes(2)};
    duplex::app_options options;
    const auto positive = [](std::string_view value, auto& out) {
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
        return ec == std::errc{} && end == value.data() + value.size() && out > 0;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        // A flag this program does not know, or one missing its value, is a mistake to say, not to
        // ignore: `duplex-echo --help` or a typo must not start a server on the default URL.
        const bool takes_value = arg == "--urls" || arg == "--threads" || arg == "--wwwroot" || arg == "--api" ||
                                 arg == "--cert" || arg == "--key" || arg == "--handshake-timeout-ms" ||
                                 arg == "--buffer-size" || arg == "--receive-buffer-size" ||
                                 arg == "--http-protocols" || arg == "--http2-limit";
        if (arg == "--help" || arg == "-h") {
            std::cout << usage;
            return 0;
        }
        if (takes_value && !has_value) {
            std::cerr << "duplex-echo: " << arg << " needs a value\n" << usage;
            return 2;
        }
        if (!takes_value && arg != "--compression" && arg != "--h2c" && !arg.starts_with("--urls=") && !arg.starts_with("--threads=")) {
            std::cerr << "duplex-echo: unknown argument '" << arg << "'\n" << usage;
            return 2;
        }
        if (arg == "--urls" || arg == "--threads") ++i;  // read by duplex::app(argc, argv)
        else if (arg == "--wwwroot") wwwroot = argv[++i];
        else if (arg == "--compression") compression = true;
        else if (arg == "--api" && has_value) {
            api = argv[++i];
            if (api != "awaitable" && api != "tokens" && api != "handlers") {
                std::cerr << "duplex-echo: --api is awaitable, tokens or handlers\n";
                return 2;
            }
        }
        else if (arg == "--cert" && has_value) https.certificate_chain_file = argv[++i];
        else if (arg == "--key" && has_value) https.private_key_file = argv[++i];
        else if (arg == "--handshake-timeout-ms" && has_value) {
            if (!positive(argv[++i], handshake_timeout_ms)) {
                std::cerr << "duplex-echo: --handshake-timeout-ms needs a positive number of milliseconds\n";
                return 2;
            }
        } else if (arg == "--h2c") {
            options.http2_prior_knowledge = true;
        } else if (arg == "--http-protocols" && has_value) {
            const std::string_view value = argv[++i];
            if (value == "http1") https.protocols = duplex::http_protocols::http1;
            else if (value == "http2") https.protocols = duplex::http_protocols::http2;
            else if (value == "both") https.protocols = duplex::http_protocols::http1_and_http2;
            else {
                std::cerr << "duplex-echo: --http-protocols is http1, http2 or both\n";
                return 2;
            }
        } else if (arg == "--http2-limit" && has_value) {
            const std::string_view setting = argv[++i];
            const auto equals = setting.find('=');
            const auto name = setting.substr(0, equals);
            std::uint64_t value = 0;
            auto& limits = options.http2_limits;
            const auto set = [&](auto& field) {
                if (!positive(setting.substr(equals + 1), value)) return false;
                field = static_cast<std::remove_reference_t<decltype(field)>>(value);
                return true;
            };
            const bool known = equals != std::string_view::npos &&
                               (name == "max_concurrent_streams"       ? set(limits.max_concurrent_streams)
                                : name == "max_header_list_size"       ? set(limits.max_header_list_size)
                                : name == "initial_stream_window_size" ? set(limits.initial_stream_window_size)
                                : name == "connection_window_size"     ? set(limits.connection_window_size)
                                : name == "stream_reset_burst"         ? set(limits.stream_reset_burst)
                                : name == "stream_reset_rate"          ? set(limits.stream_reset_rate)
                                : name == "max_continuations"          ? set(limits.max_continuations)
                                : name == "max_settings"               ? set(limits.max_settings)
                                : name == "max_consecutive_empty_data_frames" ? set(limits.max_consecutive_empty_data_frames)
                                : name == "max_window_updates_per_data_frame" ? set(limits.max_window_updates_per_data_frame)
                                : name == "max_priority_frames_per_stream"    ? set(limits.max_priority_frames_per_stream)
                                                                       : false);
            if (!known) {
                std::cerr << "duplex-echo: --http2-limit needs NAME=VALUE with a known name and a positive value\n";
                return 2;
            }
        } else if ((arg == "--buffer-size" || arg == "--receive-buffer-size") && has_value) {
            auto& size = arg == "--buffer-size" ? buffer_size : websockets.receive_buffer_size;
            if (!positive(argv[++i], size) || size > std::size_t{1} << 30) {
                std::cerr << "duplex-echo: " << arg << " needs a number of bytes from 1 to 1 GiB\n";
                return 2;
            }
        }
    }

    std::unique_ptr<duplex::app> made;
    try {
        made = std::make_unique<duplex::app>(argc, argv, options);  // reads --urls and --threads
    } catch (const std::invalid_argument& e) {  // a --threads that is not a number from 1 to 1024
        std::cerr << "duplex-echo: " << e.what() << "\n" << usage;
        return 2;
    }
    try {
        auto& app = *made;
        if (!https.certificate_chain_file.empty() || !https.private_key_file.empty()) {
            if (handshake_timeout_ms > 0) https.handshake_timeout = std::chrono::milliseconds(handshake_timeout_ms);
            app.use_https(https);
        }
        app.use_websockets(websockets);
        if (api == "handlers") app.map_websocket("/ws", duplex::examples::echo_handlers(compression));
        const bool callbacks = api == "tokens";
        app.use([compression, buffer_size, callbacks](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
            if (ctx.request.path == "/ws") {
                if (ctx.websockets.is_websocket_request()) {
                    duplex::accept_context accept;  // named: g++ 12 destroys an aggregate temporary in co_await twice
                    accept.dangerous_enable_compression = compression;
                    auto ws = co_await ctx.websockets.accept_websocket(accept);
                    if (callbacks) {
                        co_await duplex::examples::echo_with_callbacks(ws, buffer_size == 0 ? 4 * 1024 : buffer_size);
                    } else if (buffer_size == 0) {
                        co_await duplex::examples::echo(ws);
                    } else {
                        const auto buffer = std::make_unique_for_overwrite<std::byte[]>(buffer_size);
                        co_await duplex::examples::echo(ws, std::span(buffer.get(), buffer_size));
                    }
                } else {
                    ctx.response.status_code = 400;
                }
            } else {
                co_await next(ctx);
            }
        });
        app.use_static_files(wwwroot);
        app.run("http://localhost:5000");
    } catch (const std::exception& e) {
        std::cerr << "duplex-echo: " << e.what() << "\n";
        return 1;
    }
}
