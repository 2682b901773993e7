// connect() through real proxies, as an application calls it: connect_options::proxy of each kind,
// the errors a refusing or silent proxy gives (code() and what()), and use_environment_proxy.
// tests/client/client_test.py starts the proxies and duplex-echo and passes their addresses:
//
//   DUPLEX_TEST_ECHO                      ws://127.0.0.1:PORT/ws (duplex-echo)
//   DUPLEX_TEST_HTTP_PROXY                http://127.0.0.1:PORT (tinyproxy)
//   DUPLEX_TEST_HTTP_PROXY_AUTH           http://127.0.0.1:PORT (tinyproxy with BasicAuth), and
//   DUPLEX_TEST_HTTP_PROXY_CREDENTIALS    its user:password
//   DUPLEX_TEST_SOCKS_PROXY               socks5://127.0.0.1:PORT (microsocks)
//   DUPLEX_TEST_SOCKS_PROXY_AUTH          socks5://127.0.0.1:PORT (microsocks -u -P), and
//   DUPLEX_TEST_SOCKS_PROXY_CREDENTIALS   its user:password
//   DUPLEX_TEST_SILENT_PROXY              http://127.0.0.1:PORT (accepts, never answers)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <duplex/client/connect.hpp>
#include <duplex/client/proxy_error.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>

namespace {

std::string variable(const char* name) {
    const char* value = std::getenv(name);
    if (!value || !*value) throw std::runtime_error(std::string(name) + " is not set: run tests/client/client_test.py");
    return value;
}

// "http://127.0.0.1:PORT" with "user:password@" put in.
std::string with_credentials(const std::string& url, const std::string& credentials) {
    const auto at = url.find("://") + 3;
    return url.substr(0, at) + credentials + "@" + url.substr(at);
}

// The host:port part of a proxy URL, as error messages name the proxy.
std::string authority(const std::string& url) { return url.substr(url.find("://") + 3); }

template <class T>
T run(std::function<duplex::awaitable<T>()> body) {
    asio::io_context io;
    auto future = asio::co_spawn(io, body(), asio::use_future);
    io.run();
    return future.get();
}

// Connects with `options`, sends a message and returns what comes back.
std::string echo_through(const duplex::connect_options& options, const std::string& message) {
    return run<std::string>([&]() -> duplex::awaitable<std::string> {
        auto ws = co_await duplex::connect(variable("DUPLEX_TEST_ECHO"), options);
        co_await ws.send(message);
        std::string reply;
        co_await ws.receive_message(reply, 1 << 20);
        co_await ws.close(duplex::close_status::normal_closure);
        co_return reply;
    });
}

// The websocket_error connect() throws with `options`.
duplex::websocket_error refusal(const duplex::connect_options& options) {
    try {
        echo_through(options, "never");
    } catch (const duplex::websocket_error& e) {
        return e;
    }
    FAIL("connect() did not fail");
    throw std::logic_error("unreachable");
}

// host:port of duplex-echo, as messages name the target.
std::string echo_authority() {
    const auto echo = authority(variable("DUPLEX_TEST_ECHO"));
    return echo.substr(0, echo.find('/'));
}

}  // namespace

TEST_CASE("connect_options::proxy: HTTP CONNECT and SOCKS5, with and without credentials") {
    const std::string proxies[] = {
        variable("DUPLEX_TEST_HTTP_PROXY"),
        with_credentials(variable("DUPLEX_TEST_HTTP_PROXY_AUTH"), variable("DUPLEX_TEST_HTTP_PROXY_CREDENTIALS")),
        variable("DUPLEX_TEST_SOCKS_PROXY"),
        "socks5h" + variable("DUPLEX_TEST_SOCKS_PROXY").substr(6),
        with_credentials(variable("DUPLEX_TEST_SOCKS_PROXY_AUTH"), variable("DUPLEX_TEST_SOCKS_PROXY_CREDENTIALS")),
    };
    for (const auto& proxy : proxies) {
        CAPTURE(proxy);
        duplex::connect_options options;
        options.proxy = proxy;
        CHECK(echo_through(options, "through " + proxy) == "through " + proxy);
    }
}

TEST_CASE("a proxy's refusal is a websocket_error with a proxy_errc and a what() naming the proxy and the target") {
    duplex::connect_options options;
    options.proxy = variable("DUPLEX_TEST_HTTP_PROXY_AUTH");
    auto e = refusal(options);
    CHECK(e.code() == duplex::client::proxy_errc::authentication_required);
    CHECK(std::string(e.what()) == "proxy " + authority(options.proxy) + " refused CONNECT to " + echo_authority() +
                                       " (407 Proxy Authentication Required): the proxy requires authentication");

    options.proxy = variable("DUPLEX_TEST_SOCKS_PROXY_AUTH");
    e = refusal(options);
    CHECK(e.code() == duplex::client::proxy_errc::no_acceptable_method);
    CHECK(std::string(e.what()).starts_with("SOCKS5 proxy " + authority(options.proxy) + " accepts none"));

    options.proxy = with_credentials(variable("DUPLEX_TEST_SOCKS_PROXY_AUTH"), "bob:not-the-password");
    e = refusal(options);
    CHECK(e.code() == duplex::client::proxy_errc::authentication_failed);
    CHECK(std::string(e.what()).find("refused user 'bob'") != std::string::npos);
}

TEST_CASE("a proxy that never answers fails within the handshake timeout with proxy_errc::timeout") {
    duplex::connect_options options;
    options.proxy = variable("DUPLEX_TEST_SILENT_PROXY");
    options.stream.handshake_timeout = std::chrono::milliseconds(300);
    const auto e = refusal(options);
    CHECK(e.code() == duplex::client::proxy_errc::timeout);
    CHECK(std::string(e.what()).starts_with("proxy " + authority(options.proxy) + ", tunnel to " + echo_authority()));
}

TEST_CASE("use_environment_proxy: http_proxy for ws://, no_proxy, and nothing unless asked") {
    const auto refusing = variable("DUPLEX_TEST_HTTP_PROXY_AUTH");  // no credentials: 407 proves it was used
    REQUIRE(setenv("http_proxy", refusing.c_str(), 1) == 0);
    unsetenv("no_proxy");
    duplex::connect_options options;
    CHECK(echo_through(options, "not asked") == "not asked");
    options.use_environment_proxy = true;
    CHECK(refusal(options).code() == duplex::client::proxy_errc::authentication_required);
    REQUIRE(setenv("no_proxy", "127.0.0.1", 1) == 0);
    CHECK(echo_through(options, "listed in no_proxy") == "listed in no_proxy");
    unsetenv("no_proxy");
    options.proxy = variable("DUPLEX_TEST_HTTP_PROXY");  // an explicit proxy wins over the environment
    CHECK(echo_through(options, "explicit") == "explicit");
    unsetenv("http_proxy");
}

TEST_CASE("malformed proxy URIs are std::invalid_argument before anything connects") {
    duplex::connect_options options;
    options.proxy = "ftp://127.0.0.1:21";
    CHECK_THROWS_AS(echo_through(options, "x"), std::invalid_argument);
    options.proxy.clear();
    options.use_environment_proxy = true;
    REQUIRE(setenv("http_proxy", "socks4://127.0.0.1:1080", 1) == 0);
    try {
        echo_through(options, "x");
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("the environment's proxy") != std::string::npos);
    }
    unsetenv("http_proxy");
}
