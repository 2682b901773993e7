// Runs a duplex::app on a thread of its own for an in-process test: start() returns once it listens
// (on 127.0.0.1 with a free port), stop() shuts it down gracefully and waits for run() to return.
// as_client runs the test's client side on an io_context of its own; http_get and silent_client are
// the clients such tests need besides duplex::connect.
#pragma once

#include <duplex/duplex.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <thread>

namespace test {

class app_runner {
public:
    explicit app_runner(duplex::app& app) : app_(app) {}
    ~app_runner() { stop(); }
    app_runner(const app_runner&) = delete;
    app_runner& operator=(const app_runner&) = delete;

    // The base URL, e.g. "http://127.0.0.1:40123"; `listen` may be an https:// one (after use_https).
    std::string start(std::string listen = "http://127.0.0.1:0") {
        thread_ = std::thread([this, listen] {
            try {
                app_.run(listen);
            } catch (...) {
                failure_ = std::current_exception();
            }
        });
        for (int i = 0; i < 1000 && app_.listening_urls().empty() && !failure_; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (failure_) std::rethrow_exception(failure_);
        REQUIRE_MESSAGE(!app_.listening_urls().empty(), "the app did not start listening within 10 s");
        return app_.listening_urls().front();
    }

    unsigned short port() const {
        const auto url = app_.listening_urls().front();
        return static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
    }

    void stop() {
        if (!thread_.joinable()) return;
        app_.stop();
        thread_.join();
    }

private:
    duplex::app& app_;
    std::thread thread_;
    std::exception_ptr failure_;
};

// Runs `body` (a coroutine function) on a client io_context until it finishes (bounded by `limit`);
// its exception is rethrown here.
template <class F>
void as_client(F body, std::chrono::seconds limit = std::chrono::seconds(20)) {
    asio::io_context io;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    io.run_for(limit);
    REQUIRE_MESSAGE(done, "the client did not finish in time");
    if (failure) std::rethrow_exception(failure);
}

// One plain HTTP request; the whole response (the server closes: Connection: close).
inline std::string http_get(unsigned short port, const std::string& target) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::address_v4::loopback(), port});
    const auto request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string response;
    std::error_code ec;
    asio::read(socket, asio::dynamic_buffer(response), ec);
    return response;
}

// A WebSocket client whose socket takes a few KiB and then nothing more: it reads nothing until the
// test calls receive, so what the server sends it backs up (slow subscribers, backpressure).
struct silent_client {
    std::optional<duplex::ws::stream<asio::ip::tcp::socket>> ws;

    duplex::awaitable<void> connect(unsigned short port, const std::string& target) {
        asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
        socket.open(asio::ip::tcp::v4());
        socket.set_option(asio::socket_base::receive_buffer_size(4096));
        co_await socket.async_connect({asio::ip::address_v4::loopback(), port}, duplex::use_awaitable);
        ws.emplace(std::move(socket), duplex::ws::role::client);
        co_await ws->handshake("127.0.0.1", target);
    }
};

}  // namespace test
