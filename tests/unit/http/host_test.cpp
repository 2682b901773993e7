#include <duplex/http/host.hpp>
#include <duplex/http/parser.hpp>

#include <doctest/doctest.h>

#include <string_view>

using duplex::http::host_problem;
using duplex::http::is_valid_host;

namespace {

duplex::http::request parsed(std::string_view head) {
    duplex::http::request_parser parser;
    parser.feed(head);
    REQUIRE(parser.status() == duplex::http::parse_status::done);
    return parser.get();
}

}  // namespace

TEST_CASE("Host values: uri-host with an optional port (RFC 3986 §3.2.2)") {
    for (const auto* valid : {"", "example.com", "EXAMPLE.com:8080", "127.0.0.1", "127.0.0.1:", "[::1]", "[::1]:443",
                              "[v1.fe80::a+en1]", "xn--bcher-kva.example", "a%20b", "under_score", "sub-delims!$&'()*+,;="})
        CHECK_MESSAGE(is_valid_host(valid), valid);
    for (const auto* invalid : {"a b", "a/b", "a@b", "a:8x", "a:80:80", "[::1", "[]", "[::1]x", "[::1]:x", "a%2", "a%zz",
                                "a\tb", "h?q", "h#f", "ex\"ample"})
        CHECK_MESSAGE(!is_valid_host(invalid), invalid);
}

TEST_CASE("host_problem: HTTP/1.1 needs exactly one valid Host, HTTP/1.0 at most one") {
    CHECK(host_problem(parsed("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")).empty());
    CHECK(host_problem(parsed("GET / HTTP/1.1\r\nHost:\r\n\r\n")).empty());  // empty: a target without authority
    CHECK(host_problem(parsed("GET / HTTP/1.1\r\n\r\n")) == "missing Host header");
    CHECK(host_problem(parsed("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")) == "more than one Host header");
    CHECK(host_problem(parsed("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")) == "invalid Host header");
    CHECK(host_problem(parsed("GET / HTTP/1.0\r\n\r\n")).empty());
    CHECK(host_problem(parsed("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")) == "more than one Host header");
    CHECK(host_problem(parsed("GET / HTTP/1.0\r\nHost: a/b\r\n\r\n")) == "invalid Host header");
}
