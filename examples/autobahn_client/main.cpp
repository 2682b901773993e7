// duplex-autobahn-client — the client driver for the Autobahn TestSuite's fuzzing server.
//
//   duplex-autobahn-client ws://127.0.0.1:9001 duplex
//
// Asks /getCaseCount, runs /runCase?case=N&agent=AGENT for every case echoing each message back whole,
// then asks /updateReports?agent=AGENT so the server writes its report.
#include <duplex/duplex.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr std::size_t max_message_size = 64 * 1024 * 1024;

duplex::connect_options options() {
    duplex::connect_options o;
    o.stream.max_message_size = max_message_size;
    return o;
}

// Reads until the server closes, answering its close with the same status.
duplex::awaitable<void> finish(duplex::websocket& ws, duplex::receive_result& result) {
    std::vector<std::byte> message;
    while (!result.close_status) result = co_await ws.receive_message(message, max_message_size);
    co_await ws.close(*result.close_status, result.close_status_description);
}

duplex::awaitable<int> case_count(const std::string& base) {
    auto ws = co_await duplex::connect(base + "/getCaseCount", options());
    std::string text;
    auto result = co_await ws.receive_message(text, 1024);
    const int count = result.close_status ? 0 : std::stoi(text);
    if (!result.close_status) result = {};
    co_await finish(ws, result);
    co_return count;
}

duplex::awaitable<void> run_case(const std::string& base, int number, const std::string& agent) {
    auto ws = co_await duplex::connect(base + "/runCase?case=" + std::to_string(number) + "&agent=" + agent, options());
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
    auto ws = co_await duplex::connect(base + "/updateReports?agent=" + agent, options());
    duplex::receive_result nothing_yet;
    co_await finish(ws, nothing_yet);
}

duplex::awaitable<void> run(std::string base, std::string agent) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    const int count = co_await case_count(base);
    std::cerr << "duplex-autobahn-client: " << count << " cases\n";
    for (int n = 1; n <= count; ++n) {
        try {
            co_await run_case(base, n, agent);
        } catch (const std::exception& e) {
            // Failing the connection is often the expected outcome; the server judges the case.
            std::cerr << "case " << n << ": " << e.what() << "\n";
        }
    }
    co_await update_reports(base, agent);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: duplex-autobahn-client ws://HOST:PORT AGENT\n";
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
