// duplex-client — a command-line WebSocket client: each line of standard input goes out as a text
// message (or chunks as binary messages with --binary), each message received comes out on a line of its
// own; at the end of the input it closes with 1000 and exits once the close handshake is done.
//
//   printf 'hello\nworld\n' | duplex-client ws://127.0.0.1:5000/ws       # prints hello, world
//   duplex-client wss://echo.example/ws --ca ca.pem --proxy socks5h://127.0.0.1:1080 -v
//
// Options and exit status: duplex-client --help (command_line.hpp). On a terminal it shows a prompt and
// messages as they arrive. Built with DUPLEX_SEPARATE_COMPILATION (client_src.cpp compiles duplex).
#include "command_line.hpp"

#include <duplex/client/connect.hpp>
#include <duplex/client/proxy.hpp>
#include <duplex/client/uri.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/concurrent_channel.hpp>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

namespace {

using duplex::examples::client_command_line;

// Pieces of standard input, in order; an error (end of input, or a read failure) comes last. Bounded,
// so that a fast producer waits for the connection instead of filling memory.
using input_channel = asio::experimental::concurrent_channel<void(std::error_code, std::string)>;

// Reads standard input on a thread of its own (a blocking read works for terminals, pipes and files
// alike) and hands lines, or chunks with --binary, to the channel. A line's '\n' is not sent; a last
// line without one is.
void read_input(input_channel& channel, bool binary) {
    std::array<char, 64 * 1024> chunk;
    std::string line;
    const auto deliver = [&](std::error_code ec, std::string piece) {
        try {
            channel.async_send(ec, std::move(piece), asio::use_future).get();
            return true;
        } catch (const std::system_error&) {
            return false;  // the channel is closed: the connection is over
        }
    };
    for (;;) {
        const auto n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (!line.empty() && !deliver({}, std::move(line))) return;
            deliver(n == 0 ? asio::error::eof : std::error_code(errno, std::generic_category()), {});
            return;
        }
        const std::string_view data(chunk.data(), static_cast<std::size_t>(n));
        if (binary) {
            if (!deliver({}, std::string(data))) return;
            continue;
        }
        std::size_t start = 0;
        for (auto end = data.find('\n'); end != std::string_view::npos; end = data.find('\n', start)) {
            line.append(data.substr(start, end - start));
            if (!deliver({}, std::exchange(line, std::string()))) return;
            start = end + 1;
        }
        line.append(data.substr(start));
    }
}

// Where messages and (on a terminal) the prompt go.
class output {
public:
    output(bool binary, bool interactive) : binary_(binary), interactive_(interactive) {}

    void message(std::string_view text) {
        if (interactive_) std::fputs("\r\x1b[K< ", stdout);  // over the prompt
        std::fwrite(text.data(), 1, text.size(), stdout);
        if (!binary_) std::fputc('\n', stdout);
        prompt();
    }
    void prompt() {
        if (interactive_) std::fputs("> ", stdout);
        std::fflush(stdout);
    }
    void end() {
        if (interactive_) std::fputs("\r\x1b[K", stdout);
        std::fflush(stdout);
    }

private:
    bool binary_;
    bool interactive_;
};

void say(const client_command_line& command, const std::string& text) {
    if (command.verbose) std::cerr << "duplex-client: " << text << "\n";
}

std::string close_text(duplex::close_status status, std::string_view reason) {
    return std::to_string(static_cast<unsigned>(status)) + (reason.empty() ? "" : " '" + std::string(reason) + "'");
}

struct session_state {
    std::optional<duplex::close_status> server_close;  // the server's close code, once it came
    bool closing = false;                              // our close was sent (end of input or a signal)
    std::string failure;                               // why the connection failed, if it did
};

duplex::awaitable<void> receive_messages(duplex::websocket& ws, const client_command_line& command, output& out,
                                         input_channel& input, session_state& state) {
    std::string message;
    try {
        for (;;) {
            auto result = co_await ws.receive_message(message, command.options.stream.max_message_size);
            if (result.close_status) {
                state.server_close = result.close_status;
                say(command, "received close " + close_text(*result.close_status, result.close_status_description));
                if (!state.closing) {
                    state.closing = true;
                    co_await ws.close(*result.close_status, result.close_status_description);  // the answer
                    say(command, "answered the close; closed");
                }
                break;
            }
            out.message(message);
        }
    } catch (const std::exception& e) {
        state.failure = e.what();
    }
    input.close();  // the sender stops waiting for input
}

duplex::awaitable<void> send_input(duplex::websocket& ws, const client_command_line& command, output& out,
                                   input_channel& input, session_state& state) {
    try {
        std::size_t line_number = 0;
        for (;;) {
            auto [ec, piece] = co_await input.async_receive(asio::experimental::as_tuple(duplex::use_awaitable));
            if (ec == asio::experimental::error::channel_closed && state.closing) co_return;  // the server closed
            if (ec && ec != asio::error::eof && ec != asio::experimental::error::channel_closed) {
                state.failure = "cannot read standard input: " + ec.message();
                break;
            }
            if (ec) break;  // the end of the input, or a signal
            ++line_number;
            if (command.binary) {
                co_await ws.send(asio::buffer(piece), duplex::message_type::binary);
            } else if (!duplex::ws::is_valid_utf8(piece)) {
                state.failure = "line " + std::to_string(line_number) + " is not UTF-8 text (send it with --binary)";
                break;
            } else {
                co_await ws.send(piece);
            }
            out.prompt();
        }
        if (state.closing) co_return;
        state.closing = true;
        say(command, "sending close " + close_text(command.close_code, command.close_reason));
        co_await ws.close(command.close_code, command.close_reason);
        say(command, "close handshake done");
    } catch (const std::exception& e) {
        if (state.failure.empty()) state.failure = e.what();
    }
}

void describe_connection(const client_command_line& command) {
    if (!command.verbose) return;
    const auto uri = duplex::client::parse_websocket_uri(command.url);
    if (!uri) return;
    std::string proxy = command.options.proxy;
    if (proxy.empty() && command.options.use_environment_proxy) proxy = duplex::client::proxy_from_environment(*uri);
    const auto parsed_proxy = duplex::client::parse_proxy_uri(proxy);
    std::string text = "connecting to " + uri->host_header() + (uri->secure ? " over TLS" : "");
    if (parsed_proxy) text += " through proxy " + parsed_proxy->authority();
    const bool http2 = command.options.http_version == duplex::http_version::http2;
    const bool exact = command.options.http_version_policy == duplex::http_version_policy::request_version_exact;
    if (http2 && exact) text += "; CONNECT " + uri->target + " over HTTP/2";
    else if (http2 && uri->secure) text += "; CONNECT " + uri->target + " over HTTP/2 if the server can, else GET over HTTP/1.1";
    else text += "; GET " + uri->target;
    for (const auto& protocol : command.options.sub_protocols) text += ", offering sub-protocol " + protocol;
    if (command.options.dangerous_deflate) text += ", offering permessage-deflate";
    say(command, text);
}

duplex::awaitable<int> run(const client_command_line& command, input_channel& input, output& out) {
    describe_connection(command);
    duplex::websocket ws;
    try {
        ws = co_await duplex::connect(command.url, command.options);
    } catch (const std::exception& e) {
        std::cerr << "duplex-client: cannot connect to " << command.url << ": " << e.what() << "\n";
        co_return 1;
    }
    say(command, "connected" + (ws.sub_protocol().empty() ? std::string() : "; sub-protocol " + ws.sub_protocol()));
    out.prompt();
    session_state state;
    using namespace asio::experimental::awaitable_operators;
    co_await (send_input(ws, command, out, input, state) && receive_messages(ws, command, out, input, state));
    out.end();
    if (!state.failure.empty()) {
        std::cerr << "duplex-client: " << state.failure << "\n";
        co_return 1;
    }
    if (state.server_close && *state.server_close != duplex::close_status::normal_closure &&
        *state.server_close != command.close_code) {
        std::cerr << "duplex-client: the server closed with " << static_cast<unsigned>(*state.server_close) << "\n";
        co_return 3;
    }
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    client_command_line command;
    try {
        command = duplex::examples::parse_client_command_line(argc, argv);
    } catch (const std::invalid_argument& e) {
        std::cerr << "duplex-client: " << e.what() << "\n\n" << duplex::examples::client_usage;
        return 2;
    }
    if (command.help) {
        std::cout << duplex::examples::client_usage;
        return 0;
    }
    asio::io_context io(1);
    input_channel input(io, 16);
    // SIGINT and SIGTERM end the input: the session closes as at the end of it.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) input.close();
    });
    output out(command.binary, isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
    int status = 1;
    asio::co_spawn(io, run(command, input, out), [&](std::exception_ptr e, int result) {
        status = result;
        if (e) status = 1;
        signals.cancel();
        input.close();
    });
    // Detached: it may be blocked reading a terminal when the session ends, and the process exits
    // without waiting for it (std::_Exit, below, runs no destructors that it could race with).
    std::thread(read_input, std::ref(input), command.binary).detach();
    io.run();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(status);
}
