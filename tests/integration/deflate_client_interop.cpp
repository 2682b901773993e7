// Interop: duplex's client with permessage-deflate against Python's websockets server, driven by
// python_deflate_test.py, which judges the exchange:
//
//     deflate-client-interop ws://127.0.0.1:PORT/PATH [--server-max-window-bits N] [--client-max-window-bits N]
//                            [--server-no-context-takeover] [--client-no-context-takeover] [--fragment N]
//
// Connects with connect_options::dangerous_deflate set from the flags and echoes every message back
// whole with its type (with --fragment N, in pieces of N bytes) until the server closes; then answers
// the close. Exits 0 when the server's close code is 1000, 1 otherwise (its reason is printed).
#include <duplex/duplex.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_message_size = 16 * 1024 * 1024;

duplex::awaitable<void> echo_in_pieces(duplex::websocket& ws, const std::vector<std::byte>& message,
                                       duplex::message_type type, std::size_t piece) {
    std::size_t at = 0;
    do {
        const auto size = std::min(piece, message.size() - at);
        const bool last = at + size == message.size();
        co_await ws.send(asio::buffer(message.data() + at, size), type, last);
        at += size;
    } while (at < message.size());
}

duplex::awaitable<int> run(std::string url, duplex::connect_options options, std::size_t piece) {
    auto ws = co_await duplex::connect(url, options);
    std::vector<std::byte> message;
    for (;;) {
        auto result = co_await ws.receive_message(message, max_message_size);
        if (result.close_status) {
            co_await ws.close(*result.close_status, result.close_status_description);
            if (*result.close_status == duplex::close_status::normal_closure) co_return 0;
            std::cerr << "deflate-client-interop: the server closed with " << static_cast<unsigned>(*result.close_status)
                      << " " << result.close_status_description << "\n";
            co_return 1;
        }
        if (piece == 0 || message.size() <= piece)
            co_await ws.send(asio::buffer(message), result.message_type, true);
        else
            co_await echo_in_pieces(ws, message, result.message_type, piece);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: deflate-client-interop ws://HOST:PORT/PATH [options]\n";
        return 2;
    }
    duplex::connect_options options;
    duplex::deflate::options compression;
    std::size_t piece = 0;
    for (int i = 2; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--server-max-window-bits" && has_value) compression.server_max_window_bits = std::stoi(argv[++i]);
        else if (arg == "--client-max-window-bits" && has_value) compression.client_max_window_bits = std::stoi(argv[++i]);
        else if (arg == "--server-no-context-takeover") compression.disable_server_context_takeover = true;
        else if (arg == "--client-no-context-takeover") compression.disable_client_context_takeover = true;
        else if (arg == "--fragment" && has_value) piece = std::stoul(argv[++i]);
        else {
            std::cerr << "deflate-client-interop: unknown argument " << arg << "\n";
            return 2;
        }
    }
    options.dangerous_deflate = compression;
    options.stream.max_message_size = max_message_size;

    asio::io_context io(1);
    int status = 1;
    asio::co_spawn(io, run(argv[1], options, piece), [&](std::exception_ptr e, int result) {
        status = result;
        if (!e) return;
        status = 1;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& error) {
            std::cerr << "deflate-client-interop: " << error.what() << "\n";
        }
    });
    io.run();
    return status;
}
