// The client's WebSockets over HTTP/2 (RFC 8441) against the app host in-process: connect() with each
// http_version_policy over wss:// (ALPN h2) and ws:// (h2c with prior knowledge), the fallback to
// HTTP/1.1, sub-protocols and permessage-deflate on the extended CONNECT, refusals, a 16 MiB message
// both ways through the stream windows, both close directions and the server's graceful shutdown, and
// websocket_client sharing one HTTP/2 connection between WebSockets (counted by the server's kernel:
// established TCP connections to its port, from /proc/net/tcp).
//
//     http2-client-tests --make-certs examples/tls_echo/make-certs.sh --certs DIR [doctest options...]
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <duplex/client/websocket_client.hpp>
#include <duplex/duplex.hpp>

#include "app_runner.hpp"
#include "certificates_main.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

std::string certs;  // the directory make-certs.sh wrote into

// What the server's handlers saw.
struct observed {
    std::mutex mutex;
    std::vector<int> versions;       // request.version_major of each WebSocket request
    std::vector<std::string> ends;   // how each handler's WebSocket ended
    void version(int v) {
        std::lock_guard lock(mutex);
        versions.push_back(v);
    }
    void end(std::string how) {
        std::lock_guard lock(mutex);
        ends.push_back(std::move(how));
    }
    std::vector<int> all_versions() {
        std::lock_guard lock(mutex);
        return versions;
    }
};

// An echo app on /ws (sub-protocol "chat" when offered, permessage-deflate when offered), 404 elsewhere.
void echo_app(duplex::app& app, observed& seen, bool http1_only_tls = false) {
    duplex::https_options https{.certificate_chain_file = certs + "/server.pem", .private_key_file = certs + "/server.key"};
    if (http1_only_tls) https.protocols = duplex::http_protocols::http1;
    app.use_https(https);
    app.use_websockets();
    app.map("/ws", [&seen](duplex::http_context& ctx) -> duplex::awaitable<void> {
        if (!ctx.websockets.is_websocket_request()) {
            ctx.response.status_code = 400;
            co_return;
        }
        seen.version(ctx.request.version_major);
        duplex::accept_context accept;
        for (auto offered : ctx.websockets.requested_protocols())
            if (offered == "chat") accept.sub_protocol = "chat";
        accept.dangerous_enable_compression = true;
        auto ws = co_await ctx.websockets.accept_websocket(accept);
        std::string message;
        try {
            for (;;) {
                const auto r = co_await ws.receive_message(message, 32 << 20);
                if (r.close_status) {
                    seen.end("closed " + std::to_string(static_cast<int>(*r.close_status)));
                    break;
                }
                if (message == "close please") {
                    co_await ws.close(duplex::close_status::normal_closure, "as asked");
                    seen.end("server closed");
                    co_return;
                }
                co_await ws.send(asio::buffer(message), r.message_type);
            }
            co_await ws.close(duplex::close_status::normal_closure);
        } catch (const std::exception& e) {
            seen.end(std::string("failed: ") + e.what());
        }
    });
}

duplex::connect_options http2_options(duplex::http_version_policy policy) {
    duplex::connect_options options;
    options.tls.ca_file = certs + "/ca.pem";
    options.http_version = duplex::http_version::http2;
    options.http_version_policy = policy;
    return options;
}


// Established TCP connections whose local port is `port` (the server's side of each connection).
int established_to(unsigned short port) {
    int n = 0;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state;
            fields >> slot >> local >> remote >> state;
            const auto colon = local.rfind(':');
            if (colon == std::string::npos) continue;
            if (std::stoul(local.substr(colon + 1), nullptr, 16) == port && state == "01") ++n;
        }
    }
    return n;
}

duplex::awaitable<std::string> echo_once(duplex::websocket& ws, std::string text) {
    co_await ws.send(text);
    std::string reply;
    co_await ws.receive_message(reply, 1 << 20);
    co_return reply;
}

// A TLS server that selects h2 or http/1.1 through ALPN as the app host does, but whose HTTP/2 does not
// allow extended CONNECT, as most HTTP/2 servers: an HTTP/2 connection gets an empty SETTINGS frame (a
// valid server preface) and is read until the client leaves; an HTTP/1.1 connection gets a WebSocket
// that echoes one message. Counts both.
class http2_without_websockets {
public:
    http2_without_websockets() : acceptor_(io_, {asio::ip::address_v4::loopback(), 0}) {
        duplex::tls::server_options tls{.certificate_file = certs + "/server.pem", .private_key_file = certs + "/server.key"};
        tls.alpn_protocols = {"h2", "http/1.1"};
        context_ = duplex::tls::server_context(tls);
        asio::co_spawn(io_, serve(), asio::detached);
        thread_ = std::thread([this] { io_.run_for(30s); });
    }
    ~http2_without_websockets() {
        asio::post(io_, [this] { io_.stop(); });
        thread_.join();
    }
    std::string url() const { return "wss://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/ws"; }
    std::atomic<int> http2_connections{0};
    std::atomic<int> http1_websockets{0};

private:
    using tls_socket = duplex::tls::stream<asio::ip::tcp::socket>;

    duplex::awaitable<void> serve() {
        for (;;) {
            auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(io_, connection(tls_socket(std::move(socket), context_)), asio::detached);
        }
    }

    duplex::awaitable<void> connection(tls_socket secure) {
        if (co_await secure.accept(5s)) co_return;
        if (secure.alpn_protocol() == "h2") {
            ++http2_connections;
            static constexpr unsigned char empty_settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
            co_await asio::async_write(secure, asio::buffer(empty_settings), duplex::detail::use_nothrow_awaitable);
            std::array<char, 4096> ignored;
            for (;;) {
                const auto [ec, n] = co_await secure.async_read_some(asio::buffer(ignored), duplex::detail::use_nothrow_awaitable);
                if (ec) break;
            }
            co_return;
        }
        duplex::ws::stream<tls_socket> ws(std::move(secure), duplex::ws::role::server);
        co_await ws.accept();
        ++http1_websockets;
        std::array<std::byte, 1024> buffer;
        const auto r = co_await ws.receive(asio::buffer(buffer));
        co_await ws.send(asio::buffer(buffer.data(), r.count), r.message_type);
        const auto end = co_await ws.receive(asio::buffer(buffer));
        if (end.close_status) co_await ws.close(duplex::close_status::normal_closure);
    }

    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
    duplex::tls::shared_context context_;
    std::thread thread_;
};

// The echo app, listening on https:// (or on http://, taking h2c with prior knowledge or not).
struct echo_server {
    explicit echo_server(std::string listen = "https://127.0.0.1:0", bool http1_only_tls = false, bool h2c = false)
        : runner(app) {
        echo_app(app, seen, http1_only_tls);
        app.options().http2_prior_knowledge = h2c;
        base = runner.start(listen);
    }
    std::string url(std::string_view scheme = "wss", std::string_view path = "/ws") const {
        return std::string(scheme) + base.substr(base.find("://")) + std::string(path);
    }

    duplex::app app;
    observed seen;
    test::app_runner runner;
    std::string base;
};

// What connect() to `url` with HTTP/2 and `policy` fails with; it must fail, with handshake_failed.
duplex::awaitable<std::string> refusal(std::string url, duplex::http_version_policy policy) {
    try {
        co_await duplex::connect(url, http2_options(policy));
    } catch (const duplex::websocket_error& e) {
        CHECK(e.code() == duplex::websocket_errc::handshake_failed);
        co_return std::string(e.what());
    }
    FAIL("connect to " << url << " succeeded");
    co_return std::string();
}

constexpr auto exactly = duplex::http_version_policy::request_version_exact;
constexpr auto or_lower = duplex::http_version_policy::request_version_or_lower;

}  // namespace

TEST_CASE("wss:// with HTTP/2 exactly: the WebSocket goes over HTTP/2, echoes, negotiates and closes with 1000") {
    echo_server server;
    test::as_client([&]() -> duplex::awaitable<void> {
        auto options = http2_options(exactly);
        options.sub_protocols = {"other", "chat"};
        options.dangerous_deflate = duplex::deflate::options{};
        auto ws = co_await duplex::connect(server.url(), options);
        CHECK(ws.sub_protocol() == "chat");
        CHECK(co_await echo_once(ws, "over h2") == "over h2");
        std::string big(100000, 'x');  // compresses: permessage-deflate on the stream
        CHECK(co_await echo_once(ws, big) == big);
        co_await ws.close(duplex::close_status::normal_closure);
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
    server.runner.stop();
    CHECK(server.seen.all_versions() == std::vector<int>{2});
    CHECK(server.seen.ends == std::vector<std::string>{"closed 1000"});
}

TEST_CASE("ws:// with HTTP/2 exactly is h2c with prior knowledge; without it the server refuses clearly") {
    SUBCASE("the server takes h2c") {
        echo_server server("http://127.0.0.1:0", false, true);
        test::as_client([&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(server.url("ws"), http2_options(exactly));
            CHECK(co_await echo_once(ws, "over h2c") == "over h2c");
            co_await ws.close(duplex::close_status::normal_closure);
        });
        server.runner.stop();
        CHECK(server.seen.all_versions() == std::vector<int>{2});
    }
    SUBCASE("the server speaks HTTP/1.1 only: connect fails with handshake_failed, naming its answer") {
        echo_server server("http://127.0.0.1:0");
        test::as_client([&]() -> duplex::awaitable<void> {
            const auto what = co_await refusal(server.url("ws"), exactly);
            CHECK(what.find("answered in HTTP/1.1") != std::string::npos);
        });
        server.runner.stop();
        CHECK(server.seen.all_versions().empty());
    }
}

TEST_CASE("HTTP/2 or lower falls back to HTTP/1.1 when the server does not select h2; exactly HTTP/2 fails") {
    echo_server server("https://127.0.0.1:0", true);
    test::as_client([&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(server.url(), http2_options(or_lower));
        CHECK(co_await echo_once(ws, "over 1.1") == "over 1.1");
        co_await ws.close(duplex::close_status::normal_closure);
        CHECK((co_await refusal(server.url(), exactly)).find("ALPN") != std::string::npos);
    });
    server.runner.stop();
    CHECK(server.seen.all_versions() == std::vector<int>{1});
}

TEST_CASE("HTTP/2 or lower falls back to HTTP/1.1 on a new connection when the server's SETTINGS lack extended CONNECT") {
    http2_without_websockets server;
    test::as_client([&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(server.url(), http2_options(or_lower));
        CHECK(co_await echo_once(ws, "fell back") == "fell back");
        co_await ws.close(duplex::close_status::normal_closure);
        CHECK((co_await refusal(server.url(), exactly)).find("SETTINGS_ENABLE_CONNECT_PROTOCOL") != std::string::npos);
    });
    CHECK(server.http2_connections == 2);
    CHECK(server.http1_websockets == 1);
}

TEST_CASE("a refused extended CONNECT fails the connect with the server's status") {
    echo_server server;
    test::as_client([&]() -> duplex::awaitable<void> {
        CHECK((co_await refusal(server.url("wss", "/nowhere"), exactly)).find("404") != std::string::npos);
    });
}

TEST_CASE("a 16 MiB message goes both ways through the HTTP/2 stream windows") {
    echo_server server;
    test::as_client([&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(server.url(), http2_options(exactly));
        std::vector<std::byte> big(16 << 20);
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7 + (i >> 12));
        co_await ws.send(asio::buffer(big), duplex::message_type::binary);
        std::vector<std::byte> back;
        const auto r = co_await ws.receive_message(back, 32 << 20);
        CHECK(r.message_type == duplex::message_type::binary);
        CHECK(back == big);
        co_await ws.close(duplex::close_status::normal_closure);
    }, 60s);
    server.runner.stop();
    CHECK(server.seen.ends == std::vector<std::string>{"closed 1000"});
}

TEST_CASE("over HTTP/2 the server's close and the app's shutdown reach the client") {
    echo_server server;
    SUBCASE("the server closes") {
        test::as_client([&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(server.url(), http2_options(exactly));
            co_await ws.send("close please");
            std::string message;
            const auto r = co_await ws.receive_message(message, 1024);
            REQUIRE(r.close_status);
            CHECK(*r.close_status == duplex::close_status::normal_closure);
            CHECK(r.close_status_description == "as asked");
            co_await ws.close(duplex::close_status::normal_closure);
        });
        server.runner.stop();
        CHECK(server.seen.ends == std::vector<std::string>{"server closed"});
    }
    SUBCASE("the app shuts down: GOAWAY, then 1001 to the WebSocket, whose close handshake completes") {
        std::thread stopper;
        test::as_client([&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(server.url(), http2_options(exactly));
            CHECK(co_await echo_once(ws, "before") == "before");
            stopper = std::thread([&] { server.runner.stop(); });
            std::string message;
            const auto r = co_await ws.receive_message(message, 1024);
            REQUIRE(r.close_status);
            CHECK(*r.close_status == duplex::close_status::endpoint_unavailable);
            co_await ws.close(*r.close_status);  // echoing the code, as RFC 6455 §5.5.1 suggests
        });
        stopper.join();
        std::lock_guard lock(server.seen.mutex);
        REQUIRE(server.seen.ends.size() == 1);
        CHECK(server.seen.ends[0] == "closed 1001");
    }
}

TEST_CASE("websocket_client shares one HTTP/2 connection between WebSockets to one origin") {
    echo_server server;
    const auto port = server.runner.port();
    test::as_client([&]() -> duplex::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        std::vector<duplex::websocket> sockets;
        {
            duplex::websocket_client client(executor);
            const auto options = http2_options(exactly);
            for (int i = 0; i < 3; ++i) sockets.push_back(co_await client.connect(server.url(), options));
            CHECK(client.http2_connections() == 1);
            CHECK(established_to(port) == 1);
            for (int i = 0; i < 3; ++i) {
                const auto text = "socket " + std::to_string(i);
                CHECK(co_await echo_once(sockets[i], text) == text);
            }
            co_await sockets[0].close(duplex::close_status::normal_closure);
            // A closed WebSocket's stream is gone; the connection stays for the others and new ones.
            sockets[0] = co_await client.connect(server.url(), options);
            CHECK(co_await echo_once(sockets[0], "again") == "again");
            CHECK(established_to(port) == 1);
        }
        // The client is gone: the connection ends once its last WebSocket has.
        for (auto& ws : sockets) co_await ws.close(duplex::close_status::normal_closure);
        asio::steady_timer pause(executor);
        for (int i = 0; i < 200 && established_to(port) != 0; ++i) {
            pause.expires_after(10ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
        CHECK(established_to(port) == 0);
    });
    server.runner.stop();
    CHECK(server.seen.all_versions() == std::vector<int>{2, 2, 2, 2});
    CHECK(server.seen.ends.size() == 4);
}

int main(int argc, char** argv) { return test::run_with_certificates(argc, argv, certs); }
