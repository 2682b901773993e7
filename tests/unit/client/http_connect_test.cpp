#include <duplex/client/http_connect.hpp>

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <string>

using namespace duplex::client;

namespace {
proxy_uri proxy(std::string_view text) { return *parse_proxy_uri(text); }
}  // namespace

TEST_CASE("HTTP CONNECT: the request names the target in authority form") {
    http_connect_handshake h(proxy("http://127.0.0.1:8888"), "example.com", 443);
    CHECK(h.take_output() == "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    CHECK(h.take_output().empty());
    CHECK(h.status() == proxy_handshake_status::need_more);
    CHECK(h.target() == "example.com:443");

    http_connect_handshake v6(proxy("http://127.0.0.1:8888"), "::1", 9001);
    CHECK(v6.take_output() == "CONNECT [::1]:9001 HTTP/1.1\r\nHost: [::1]:9001\r\n\r\n");
}

TEST_CASE("HTTP CONNECT: credentials go in Proxy-Authorization as Basic (RFC 7617)") {
    http_connect_handshake h(proxy("http://Aladdin:open%20sesame@proxy:3128"), "example.com", 80);
    CHECK(h.take_output() ==
          "CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n"
          "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
}

TEST_CASE("HTTP CONNECT: a 2xx answer, however it is split, opens the tunnel and nothing after it is used") {
    const std::string answer = "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n";
    for (std::size_t split = 1; split < answer.size(); ++split) {
        http_connect_handshake h(proxy("http://p:1"), "h", 80);
        (void)h.take_output();
        CHECK(h.feed(std::string_view(answer).substr(0, split)) == split);
        CHECK(h.status() == proxy_handshake_status::need_more);
        const std::string rest = answer.substr(split) + "\x81\x05hello";
        CHECK(h.feed(rest) == answer.size() - split);
        CHECK(h.status() == proxy_handshake_status::done);
        CHECK(h.feed("more") == 0);
    }
}

TEST_CASE("HTTP CONNECT: 407 asks for authentication, other statuses refuse, naming the target and the status") {
    http_connect_handshake h(proxy("http://p:1"), "example.com", 443);
    h.feed("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"tinyproxy\"\r\n\r\n");
    CHECK(h.status() == proxy_handshake_status::failed);
    CHECK(h.error() == proxy_errc::authentication_required);
    CHECK(h.detail() == "refused CONNECT to example.com:443 (407 Proxy Authentication Required)");
    CHECK(h.response().status_code == 407);

    http_connect_handshake refused(proxy("http://p:1"), "example.com", 443);
    refused.feed("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    CHECK(refused.error() == proxy_errc::connect_refused);
    CHECK(refused.detail() == "refused CONNECT to example.com:443 (403 Forbidden)");

    http_connect_handshake informational(proxy("http://p:1"), "h", 1);
    informational.feed("HTTP/1.1 101 Switching Protocols\r\n\r\n");
    CHECK(informational.error() == proxy_errc::connect_refused);
}

TEST_CASE("HTTP CONNECT: an answer that is not HTTP, or too large, is malformed") {
    http_connect_handshake h(proxy("http://p:1"), "example.com", 443);
    h.feed(std::string("\x05\x00", 2));
    CHECK(h.status() == proxy_handshake_status::failed);
    CHECK(h.error() == proxy_errc::malformed_reply);
    CHECK(h.detail().starts_with("answered CONNECT to example.com:443 with no HTTP response ("));

    duplex::http::parser_limits limits;
    limits.max_head_bytes = 64;
    http_connect_handshake big(proxy("http://p:1"), "h", 1, limits);
    big.feed("HTTP/1.1 200 OK\r\nX-Padding: " + std::string(100, 'x') + "\r\n\r\n");
    CHECK(big.error() == proxy_errc::malformed_reply);
}
