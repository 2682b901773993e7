// duplex-autobahn-client — the client driver for the Autobahn TestSuite's fuzzing server.
//
//   duplex-autobahn-client ws://127.0.0.1:9001 duplex
//   duplex-autobahn-client wss://127.0.0.1:9001 duplex --ca ca.pem     (over TLS, trusting ca.pem)
//   duplex-autobahn-client ws://127.0.0.1:9001 duplex --http2          (every WebSocket over HTTP/2:
//                                                   RFC 8441, h2c for ws://, ALPN h2 for wss://)
//
// Asks /getCaseCount, runs /runCase?case=N&agent=AGENT for every case echoing each message back whole,
// then asks /updateReports?agent=AGENT so the server writes its report.
//
// Every case offers permessage-deflate (RFC 7692); the fuzzing server accepts it only in sections 12 and
// 13. Before each case /getCaseInfo?case=N names it: in 13.j the offer asks the server for what
// Autobahn's own client asks in that subsection (server_no_context_takeover, server_max_window_bits=9),
// elsewhere it is the default offer. duplex offers one set of parameters, so 13.7, where Autobahn's
// client sends three offers, gets the first of them, the one the fuzzing server accepts.
#include <duplex/duplex.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_message_size = 64 * 1024 * 1024;

// --ca: the CA that signed a wss:// server's certificate, trusted instead of the system store.
std::string trusted_ca_file;
// --http2: each WebSocket on a connection of its own over HTTP/2 exactly.
bool over_http2 = false;

duplex::connect_options plain_options() {
    duplex::connect_options o;
    o.stream.max_message_size = max_message_size;
    o.tls.ca_file = trusted_ca_file;
    if (over_http2) {
        o.http_version = duplex::http_version::http2;
        o.http_version_policy = duplex::http_version_policy::request_version_exact;
    }
    return o;
}

// Autobahn 13.1-13.7: what the client asks of the server, as (no context takeover, max window bits);
// a window of 15 is what an offer without server_max_window_bits allows anyway.
struct server_request {
    bool no_context_takeover;
    int max_window_bits;
};
constexpr server_request section_13_offers[] = {{false, 15}, {true, 15}, {false, 9}, {false, 15},
                                                {true, 9},   {true, 15}, {true, 9}};

duplex::connect_options case_options(std::string_view case_id) {
    auto o = plain_options();
    duplex::deflate::options offer;
    if (case_id.starts_with("13.")) {
        const auto rest = case_id.substr(3);
        const auto subsection = rest.empty() ? 0 : rest.front() - '0';
        if (subsection >= 1 && subsection <= 7 && (rest.size() == 1 || rest[1] == '.')) {
            const auto& request = section_13_offers[subsection - 1];
            offer.disable_server_context_takeover = request.no_context_takeover;
            offer.server_max_window_bits = request.max_window_bits;
        }
    }
    o.dangerous_deflate = offer;
    return o;
}

// Reads until the server closes, answering its close with the same status.
duplex::awaitable<void> finish(duplex::websocket& ws, duplex::receive_result& result) {
    std::vector<std::byte> message;
    while (!result.close_status) result = co_await ws.receive_message(message, max_message_size);
    co_await ws.close(*result.close_status, result.close_status_description);
}

// Reads the one text message the server sends on `target`, then closes as the server asks.
duplex::awaitable<std::optional<std::string>> fetch(std::string url) {
    const auto options = plain_options();
    auto ws = co_await duplex::connect(url, options);
    std::string text;
    auto result = co_await ws.receive_message(text, 64 * 1024);
    std::optional<std::string> answer;
    if (!result.close_status) {
        answer = std::move(text);
        result = {};
    }
    co_await finish(ws, result);
    co_return answer;
}

// The "id" of /getCaseInfo's JSON answer ({"id": "13.3.1", "description": ...}).
std::string case_id_of(std::string_view json) {
    const auto key = json.find("\"id\"");
    if (key == std::string_view::npos) return {};
    const auto open = json.find('"', json.find(':', key));
    if (open == std::string_view::npos) return {};
    const auto close = json.find('"', open + 1);
    if (close == std::string_view::npos) return {};
    return std::string(json.substr(open + 1, close - open - 1));
}

duplex::awaitable<int> case_count(const std::string& base) {
    const auto text = co_await fetch(base + "/getCaseCount");
    co_return text ? std::stoi(*text) : 0;
}

duplex::awaitable<std::string> case_id(const std::string& base, int number) {
    std::optional<std::string> info;
    try {
        info = co_await fetch(base + "/getCaseInfo?case=" + std::to_string(number));
    } catch (const std::exception&) {
        // A server without getCaseInfo: every case gets the default offer.
    }
    co_return info ? case_id_of(*info) : std::string();
}

duplex::awaitable<void> run_case(const std::string& base, int number, const std::string& id, const std::string& agent) {
    const auto options = case_options(id);
    auto ws = co_await duplex::connect(base + "/runCase?case=" + std::to_string(number) + "&agent=" + agent, options);
    std::vector<std::byte> message;
    for (;;) {
        auto result = co_await ws.receive_message(message, max_message_size);
        if (result.close_status) {
            co_await ws.close(*result.close_status, result.close_status_description);
            co_return;
        }
        co_await ws.send(asio::buffer(message), result.message_type, true);
    }
}

duplex::awaitable<void> update_reports(const std::string& base, const std::string& agent) {
    const auto options = plain_options();
    auto ws = co_await duplex::connect(base + "/updateReports?agent=" + agent, options);
    duplex::receive_result nothing_yet;
    co_await finish(ws, nothing_yet);
}

duplex::awaitable<void> run(std::string base, std::string agent) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    const int count = co_await case_count(base);
    std::cerr << "duplex-autobahn-client: " << count << " cases\n";
    for (int n = 1; n <= count; ++n) {
        const auto id = co_await case_id(base, n);
        try {
            co_await run_case(base, n, id, agent);
        } catch (const std::exception& e) {
            // Failing the connection is often the expected outcome; the server judges the case.
            std::cerr << "case " << n << (id.empty() ? "" : " (" + id + ")") << ": " << e.what() << "\n";
        }
    }
    co_await update_reports(base, agent);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    bool valid = args.size() >= 2;
    for (std::size_t i = 2; valid && i < args.size(); ++i) {
        if (args[i] == "--http2") over_http2 = true;
        else if (args[i] == "--ca" && i + 1 < args.size()) trusted_ca_file = args[++i];
        else valid = false;
    }
    if (!valid) {
        std::cerr << "usage: duplex-autobahn-client ws[s]://HOST:PORT AGENT [--ca CA_FILE] [--http2]\n";
        return 2;
    }
    asio::io_context io(1);
    int status = 0;
    asio::co_spawn(io, run(argv[1], argv[2]), [&](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& error) {
            std::cerr << "duplex-autobahn-client: " << error.what() << "\n";
            status = 1;
        }
    });
    io.run();
    return status;
}
