#include <duplex/client/socks5.hpp>

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <stdexcept>
#include <string>

using namespace duplex::client;

namespace {
proxy_uri proxy(std::string_view text) { return *parse_proxy_uri(text); }
std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (int v : values) out.push_back(static_cast<char>(v));
    return out;
}
// The reply to a CONNECT: success, bound to 127.0.0.1:4660.
const std::string success_ipv4 = bytes({5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34});
}  // namespace

TEST_CASE("SOCKS5 without credentials: method 'no authentication', then CONNECT to a name, an IPv4 or an IPv6 address") {
    socks5_handshake h("example.com", 443, proxy("socks5h://p:1080"));
    CHECK(h.take_output() == bytes({5, 1, 0}));
    CHECK(h.take_output().empty());
    CHECK(h.feed(bytes({5, 0})) == 2);
    CHECK(h.take_output() == bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({0x01, 0xBB}));
    CHECK(h.feed(success_ipv4) == success_ipv4.size());
    CHECK(h.status() == proxy_handshake_status::done);

    socks5_handshake v4("127.0.0.1", 5000, proxy("socks5://p"));
    (void)v4.take_output();
    v4.feed(bytes({5, 0}));
    CHECK(v4.take_output() == bytes({5, 1, 0, 1, 127, 0, 0, 1, 0x13, 0x88}));

    socks5_handshake v6("::1", 80, proxy("socks5://p"));
    (void)v6.take_output();
    v6.feed(bytes({5, 0}));
    CHECK(v6.take_output() == bytes({5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}));
    CHECK(v6.target() == "[::1]:80");
}

TEST_CASE("SOCKS5 with credentials: both methods offered, RFC 1929 when the proxy picks it") {
    socks5_handshake h("example.com", 80, proxy("socks5h://bob:pa55@p"));
    CHECK(h.take_output() == bytes({5, 2, 0, 2}));
    h.feed(bytes({5, 2}));
    CHECK(h.take_output() == bytes({1, 3}) + "bob" + bytes({4}) + "pa55");
    h.feed(bytes({1, 0}));
    CHECK(h.take_output() == bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({0, 80}));
    h.feed(success_ipv4);
    CHECK(h.status() == proxy_handshake_status::done);

    socks5_handshake without_authentication("example.com", 80, proxy("socks5h://bob:pa55@p"));
    (void)without_authentication.take_output();
    without_authentication.feed(bytes({5, 0}));  // the proxy needs none: straight to CONNECT
    CHECK(without_authentication.take_output()[0] == 5);
}

TEST_CASE("SOCKS5: refused methods and credentials") {
    socks5_handshake none("h", 1, proxy("socks5://p"));
    (void)none.take_output();
    none.feed(bytes({5, 0xFF}));
    CHECK(none.status() == proxy_handshake_status::failed);
    CHECK(none.error() == proxy_errc::no_acceptable_method);
    CHECK(none.detail() == "accepts none of the methods offered (no authentication)");

    socks5_handshake refused("h", 1, proxy("socks5://bob:bad@p"));
    (void)refused.take_output();
    refused.feed(bytes({5, 2}));
    (void)refused.take_output();
    refused.feed(bytes({1, 1}));
    CHECK(refused.error() == proxy_errc::authentication_failed);
    CHECK(refused.detail() == "refused user 'bob'");

    socks5_handshake unoffered("h", 1, proxy("socks5://p"));
    (void)unoffered.take_output();
    unoffered.feed(bytes({5, 2}));  // username/password, which was not offered
    CHECK(unoffered.error() == proxy_errc::malformed_reply);
}

TEST_CASE("SOCKS5: every reply code 1-8 becomes its error, others unknown_reply, judged on five bytes") {
    const proxy_errc expected[] = {proxy_errc::general_failure,      proxy_errc::connection_not_allowed,
                                   proxy_errc::network_unreachable,  proxy_errc::host_unreachable,
                                   proxy_errc::connection_refused,   proxy_errc::ttl_expired,
                                   proxy_errc::command_not_supported, proxy_errc::address_type_not_supported};
    for (int code = 1; code <= 10; ++code) {
        socks5_handshake h("example.com", 443, proxy("socks5h://p"));
        (void)h.take_output();
        h.feed(bytes({5, 0}));
        (void)h.take_output();
        CHECK(h.feed(bytes({5, code, 0, 1, 0, 0, 0, 0, 0, 0})) == 5);
        CHECK(h.status() == proxy_handshake_status::failed);
        CHECK(h.error() == (code <= 8 ? expected[code - 1] : proxy_errc::unknown_reply));
        CHECK(h.detail() == "refused the connection to example.com:443 (reply " + std::to_string(code) + ")");
    }
}

TEST_CASE("SOCKS5: replies split anywhere, with a name or an IPv6 address bound, and nothing past them used") {
    const std::string replies[] = {bytes({5, 0, 0, 3, 4}) + "host" + bytes({0, 80}),
                                   bytes({5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}),
                                   success_ipv4};
    for (const auto& reply : replies) {
        const std::string answers = bytes({5, 0}) + reply;
        for (std::size_t split = 1; split < answers.size(); ++split) {
            socks5_handshake h("example.com", 443, proxy("socks5h://p"));
            (void)h.take_output();
            std::size_t used = h.feed(answers.substr(0, split));
            (void)h.take_output();
            used += h.feed(answers.substr(used) + "tail");
            while (used < answers.size() && h.status() == proxy_handshake_status::need_more) {
                (void)h.take_output();
                used += h.feed(answers.substr(used) + "tail");
            }
            CHECK(h.status() == proxy_handshake_status::done);
            CHECK(used == answers.size());
        }
    }
}

TEST_CASE("SOCKS5: answers in another protocol are malformed") {
    socks5_handshake http("h", 1, proxy("socks5://p"));
    (void)http.take_output();
    http.feed("HTTP/1.1 400 Bad Request\r\n\r\n");
    CHECK(http.error() == proxy_errc::malformed_reply);

    socks5_handshake address_type("h", 1, proxy("socks5://p"));
    (void)address_type.take_output();
    address_type.feed(bytes({5, 0}));
    (void)address_type.take_output();
    address_type.feed(bytes({5, 0, 0, 9, 0}));
    CHECK(address_type.error() == proxy_errc::malformed_reply);
}

TEST_CASE("SOCKS5: names and credentials longer than 255 bytes are refused before anything is sent") {
    CHECK_THROWS_AS(socks5_handshake(std::string(256, 'a'), 1, proxy("socks5h://p")), std::invalid_argument);
    CHECK_NOTHROW(socks5_handshake(std::string(255, 'a'), 1, proxy("socks5h://p")));
    CHECK_THROWS_AS(socks5_handshake("h", 1, proxy("socks5://" + std::string(256, 'u') + ":x@p")), std::invalid_argument);
}
