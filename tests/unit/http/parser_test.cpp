#include <duplex/http/parser.hpp>
#include <duplex/http/request.hpp>
#include <duplex/http/response.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;
using duplex::http::parse_status;
using duplex::http::parser_limits;
using duplex::http::request_parser;
using duplex::http::response_parser;

namespace {

constexpr std::string_view sample_head =
    "GET /chat/room?id=7&x=%20 HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "X-Empty:\r\n"
    "X-Padded: \t padded \t value \t \r\n"
    "X-Obs-Text: caf\xc3\xa9\r\n"
    "\r\n";

// Feeds the chunks in order until the parser finishes; returns the bytes it consumed in total.
template <class Parser>
std::size_t feed_chunks(Parser& parser, const std::vector<std::string_view>& chunks) {
    std::size_t consumed = 0;
    for (auto chunk : chunks) {
        const auto used = parser.feed(chunk);
        CHECK(used <= chunk.size());
        consumed += used;
        if (parser.status() != parse_status::need_more) break;
        CHECK(used == chunk.size());
    }
    return consumed;
}

template <class Parser>
std::size_t feed_bytewise(Parser& parser, std::string_view text) {
    std::size_t consumed = 0;
    for (std::size_t i = 0; i < text.size() && parser.status() == parse_status::need_more; ++i)
        consumed += parser.feed(text.substr(i, 1));
    return consumed;
}

void check_same(const duplex::http::request& a, const duplex::http::request& b) {
    CHECK(a.method == b.method);
    CHECK(a.target == b.target);
    CHECK(a.path == b.path);
    CHECK(a.query.raw() == b.query.raw());
    CHECK(a.version_major == b.version_major);
    CHECK(a.version_minor == b.version_minor);
    REQUIRE(a.headers.size() == b.headers.size());
    auto ib = b.headers.begin();
    for (const auto& h : a.headers) {
        CHECK(h.name == ib->name);
        CHECK(h.value == ib->value);
        ++ib;
    }
}

struct error_case {
    std::string_view text;
    int status;
    std::string_view message;
};

void check_error(const error_case& c, parser_limits limits = {}) {
    CAPTURE(c.text);
    request_parser whole(limits);
    whole.feed(c.text);
    CHECK(whole.status() == parse_status::error);
    CHECK(whole.error_status() == c.status);
    CHECK(whole.error_message() == c.message);

    request_parser bytewise(limits);
    feed_bytewise(bytewise, c.text);
    CHECK(bytewise.status() == parse_status::error);
    CHECK(bytewise.error_status() == c.status);
    CHECK(bytewise.error_message() == c.message);
}

std::string head_with_value_of(std::size_t value_length) {
    return "GET / HTTP/1.1\r\nX: " + std::string(value_length, 'v') + "\r\n\r\n";
}

}  // namespace

TEST_CASE("request parser: a valid head fed whole") {
    const std::string text = std::string(sample_head) + "leftover bytes";
    request_parser parser;
    const auto used = parser.feed(text);
    REQUIRE(parser.status() == parse_status::done);
    CHECK(used == sample_head.size());
    CHECK(text.substr(used) == "leftover bytes");
    CHECK(parser.error_status() == 0);
    CHECK(parser.head_bytes() == sample_head.size());

    const auto& r = parser.get();
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat/room?id=7&x=%20");
    CHECK(r.path == "/chat/room");
    CHECK(r.query.raw() == "id=7&x=%20");
    CHECK(r.version_major == 1);
    CHECK(r.version_minor == 1);
    CHECK(r.headers.size() == 7);
    CHECK(r.headers.get("host") == "example.com:8080");
    CHECK(r.headers.get("X-EMPTY") == "");
    CHECK(r.headers.get("x-padded") == "padded \t value");
    CHECK(r.headers.get("X-Obs-Text") == "caf\xc3\xa9");
    CHECK(r.headers.has_token("Connection", "upgrade"));

    CHECK(parser.feed("more") == 0);
}

TEST_CASE("request parser: byte by byte and every split give the same result") {
    const std::string text = std::string(sample_head) + "GET /next HTTP/1.1\r\n";
    request_parser reference;
    reference.feed(text);
    REQUIRE(reference.status() == parse_status::done);

    SUBCASE("byte by byte") {
        request_parser parser;
        const auto used = feed_bytewise(parser, text);
        REQUIRE(parser.status() == parse_status::done);
        CHECK(used == sample_head.size());
        CHECK(parser.feed(text.substr(used)) == 0);
        check_same(parser.get(), reference.get());
    }
    SUBCASE("split in two at every position") {
        for (std::size_t i = 0; i <= text.size(); ++i) {
            CAPTURE(i);
            request_parser parser;
            const std::string_view all = text;
            const auto used = feed_chunks(parser, {all.substr(0, i), all.substr(i)});
            REQUIRE(parser.status() == parse_status::done);
            CHECK(used == sample_head.size());
            check_same(parser.get(), reference.get());
        }
    }
    SUBCASE("split in three at every pair of positions") {
        const std::string_view all = sample_head;
        for (std::size_t i = 0; i <= all.size(); ++i) {
            for (std::size_t j = i; j <= all.size(); ++j) {
                request_parser parser;
                const auto used = feed_chunks(parser, {all.substr(0, i), all.substr(i, j - i), all.substr(j)});
                REQUIRE(parser.status() == parse_status::done);
                CHECK(used == all.size());
                check_same(parser.get(), reference.get());
            }
        }
    }
}

TEST_CASE("request parser: request line forms") {
    SUBCASE("no query") {
        request_parser p;
        p.feed("OPTIONS * HTTP/1.0\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().method == "OPTIONS");
        CHECK(p.get().path == "*");
        CHECK(p.get().query.empty());
        CHECK(p.get().version_minor == 0);
        CHECK(p.get().headers.empty());
    }
    SUBCASE("empty query and absolute form: the path is the URI's path") {
        request_parser p;
        p.feed("GET http://example.com/a?? HTTP/1.1\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().target == "http://example.com/a??");
        CHECK(p.get().path == "/a");
        CHECK(p.get().query.raw() == "?");
    }
    SUBCASE("absolute form without a path, with a port, another scheme; authority form stays as sent") {
        const std::pair<std::string_view, std::string_view> cases[] = {
            {"GET http://example.com HTTP/1.1\r\n\r\n", "/"},
            {"GET HTTPS://example.com:8443/ws/chat HTTP/1.1\r\n\r\n", "/ws/chat"},
            {"GET ws+x.y://h//double HTTP/1.1\r\n\r\n", "//double"},
            {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "example.com:443"},
            {"GET 1http://h/a HTTP/1.1\r\n\r\n", "1http://h/a"},  // a scheme starts with a letter
            {"GET ://h/a HTTP/1.1\r\n\r\n", "://h/a"},
        };
        for (const auto& [text, path] : cases) {
            request_parser p;
            p.feed(text);
            REQUIRE(p.status() == parse_status::done);
            CHECK(p.get().path == path);
        }
    }
    SUBCASE("a higher minor version is HTTP/1") {
        request_parser p;
        p.feed("GET / HTTP/1.9\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().version_minor == 9);
    }
    SUBCASE("methods are case-sensitive tokens, kept as sent") {
        request_parser p;
        p.feed("get / HTTP/1.1\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().method == "get");
    }
}

TEST_CASE("request parser: line endings") {
    SUBCASE("bare LF is accepted by default, mixed with CRLF") {
        request_parser p;
        const std::string_view text = "GET / HTTP/1.1\nHost: a\r\nX: b\n\nrest";
        CHECK(p.feed(text) == text.size() - 4);
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().headers.get("Host") == "a");
        CHECK(p.get().headers.get("X") == "b");
    }
    SUBCASE("bare LF is refused when accept_bare_lf is false") {
        parser_limits strict;
        strict.accept_bare_lf = false;
        check_error({"GET / HTTP/1.1\n\n", 400, "bare LF line ending"}, strict);
        check_error({"GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF line ending"}, strict);
        check_error({"GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF line ending"}, strict);
        request_parser p(strict);
        p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        CHECK(p.status() == parse_status::done);
    }
    SUBCASE("a CR must be followed by LF") {
        check_error({"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "CR not followed by LF"});
        check_error({"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "CR not followed by LF"});
        check_error({"GET / HTTP/1.1\r\n\r\r\n", 400, "CR not followed by LF"});
    }
    SUBCASE("one empty line before the request line is ignored") {
        for (auto text : {"\r\nGET / HTTP/1.1\r\n\r\n"sv, "\nGET / HTTP/1.1\r\n\r\n"sv}) {
            request_parser p;
            CHECK(p.feed(text) == text.size());
            REQUIRE(p.status() == parse_status::done);
            CHECK(p.get().method == "GET");
        }
        check_error({"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, "more than one empty line before the request line"});
        check_error({"\n\nGET / HTTP/1.1\r\n\r\n", 400, "more than one empty line before the request line"});
    }
}

TEST_CASE("request parser: malformed request lines") {
    for (const auto& c : std::vector<error_case>{
             {"GET/ HTTP/1.1\r\n\r\n", 400, "invalid character in method"},
             {"GE(T / HTTP/1.1\r\n\r\n", 400, "invalid character in method"},
             {"GET\r\n\r\n", 400, "invalid character in method"},
             {" GET / HTTP/1.1\r\n\r\n", 400, "request line does not start with a method"},
             {"GET  / HTTP/1.1\r\n\r\n", 400, "empty request target"},
             {"GET /\r\n\r\n", 400, "request line without an HTTP version"},
             {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "invalid character in request target"},
             {"GET /a\tb HTTP/1.1\r\n\r\n", 400, "invalid character in request target"},
             {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "invalid character in request target"},
             {"GET /\x7f HTTP/1.1\r\n\r\n", 400, "invalid character in request target"},
             {"GET / http/1.1\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/1.1 \r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/1.1x\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/11\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/1.\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/2\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/1.1.1\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / / HTTP/1.1\r\n\r\n", 400, "malformed HTTP version"},
             {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP version not supported"},
             {"GET / HTTP/3.0\r\n\r\n", 505, "HTTP version not supported"},
             {"GET / HTTP/0.9\r\n\r\n", 505, "HTTP version not supported"},
             {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version not supported"},
         })
        check_error(c);
}

TEST_CASE("request parser: malformed header fields") {
    for (const auto& c : std::vector<error_case>{
             {"GET / HTTP/1.1\r\nHost\r\n\r\n", 400, "header line without a colon"},
             {"GET / HTTP/1.1\r\nHost\nX: y\n\n", 400, "header line without a colon"},
             {"GET / HTTP/1.1\r\nHost \r\n\r\n", 400, "header line without a colon"},
             {"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", 400, "whitespace inside header name"},
             {"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", 400, "whitespace between header name and colon"},
             {"GET / HTTP/1.1\r\nHost \t : example.com\r\n\r\n", 400, "whitespace between header name and colon"},
             {"GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n", 400, "whitespace between header name and colon"},
             {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "obsolete line folding is not supported"},
             {"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400, "obsolete line folding is not supported"},
             {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "whitespace before the first header field"},
             {"GET / HTTP/1.1\r\n: value\r\n\r\n", 400, "empty header name"},
             {"GET / HTTP/1.1\r\nX-A\x7f: v\r\n\r\n", 400, "invalid character in header name"},
             {"GET / HTTP/1.1\r\nX/A: v\r\n\r\n", 400, "invalid character in header name"},
             {"GET / HTTP/1.1\r\n(X: v\r\n\r\n", 400, "invalid character in header name"},
             {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400, "control character in header value"},
             {"GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 400, "control character in header value"},
             {"GET / HTTP/1.1\r\nX: \x1b[31m\r\n\r\n", 400, "control character in header value"},
             {"GET / HTTP/1.1\r\nX: a\x00z\r\n\r\n"sv, 400, "control character in header value"},
         })
        check_error(c);

    request_parser p;
    p.feed("GET / HTTP/1.1\r\nX: a\tb\r\n\r\n");
    REQUIRE(p.status() == parse_status::done);
    CHECK(p.get().headers.get("X") == "a\tb");
}

TEST_CASE("request parser: an error stops consumption at the offending byte") {
    request_parser p;
    const std::string_view text = "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n";
    CHECK(p.feed(text) == text.find('\x01'));
    CHECK(p.status() == parse_status::error);
    CHECK(p.feed("GET / HTTP/1.1\r\n\r\n") == 0);
    CHECK(p.status() == parse_status::error);
}

TEST_CASE("request parser: target limit is crossed at limit + 1") {
    for (std::size_t limit : {std::size_t{1}, std::size_t{32}, parser_limits{}.max_target_bytes}) {
        CAPTURE(limit);
        parser_limits limits;
        limits.max_target_bytes = limit;
        const std::string at_limit = "/" + std::string(limit - 1, 'a');

        request_parser ok(limits);
        ok.feed("GET " + at_limit + " HTTP/1.1\r\n\r\n");
        REQUIRE(ok.status() == parse_status::done);
        CHECK(ok.get().target.size() == limit);

        check_error({"GET " + at_limit + "a HTTP/1.1\r\n\r\n", 414, "request target too long"}, limits);

        // Refused as soon as the limit is crossed, before the line ends.
        request_parser early(limits);
        const std::string endless = "GET " + at_limit + std::string(1'000'000, 'a');
        const auto used = early.feed(endless);
        CHECK(early.status() == parse_status::error);
        CHECK(early.error_status() == 414);
        CHECK(used == 4 + limit);
        CHECK(early.get().target.size() <= limit + 1);
    }
}

TEST_CASE("request parser: head size limit is crossed at limit + 1") {
    const std::size_t overhead = head_with_value_of(0).size();
    for (std::size_t limit : {std::size_t{64}, parser_limits{}.max_head_bytes}) {
        CAPTURE(limit);
        parser_limits limits;
        limits.max_head_bytes = limit;
        const auto at_limit = head_with_value_of(limit - overhead);
        REQUIRE(at_limit.size() == limit);

        request_parser ok(limits);
        CHECK(ok.feed(at_limit + "body") == limit);
        CHECK(ok.status() == parse_status::done);

        request_parser ok_bytewise(limits);
        CHECK(feed_bytewise(ok_bytewise, at_limit + "body") == limit);
        CHECK(ok_bytewise.status() == parse_status::done);

        const auto over = head_with_value_of(limit - overhead + 1);
        check_error({over, 431, "request head too large"}, limits);

        request_parser over_whole(limits);
        CHECK(over_whole.feed(over) == limit);
    }
    SUBCASE("a 1 MB header line is refused once the limit is passed") {
        request_parser p;
        std::size_t fed = 0;
        constexpr std::string_view start = "GET / HTTP/1.1\r\nX-Huge: ";
        CHECK(p.feed(start) == start.size());
        fed += start.size();
        const std::string chunk(4096, 'x');
        while (p.status() == parse_status::need_more && fed < 1'000'000) {
            p.feed(chunk);
            fed += chunk.size();
        }
        CHECK(p.status() == parse_status::error);
        CHECK(p.error_status() == 431);
        CHECK(p.head_bytes() == parser_limits{}.max_head_bytes);
        CHECK(fed < parser_limits{}.max_head_bytes + chunk.size() + 1);
    }
    SUBCASE("the leading empty line counts toward the head") {
        parser_limits limits;
        limits.max_head_bytes = 18;
        request_parser ok(limits);
        ok.feed("GET / HTTP/1.1\r\n\r\n");
        CHECK(ok.status() == parse_status::done);
        check_error({"\r\nGET / HTTP/1.1\r\n\r\n", 431, "request head too large"}, limits);
    }
}

TEST_CASE("request parser: header count limit is crossed at limit + 1") {
    for (std::size_t limit : {std::size_t{0}, std::size_t{3}, parser_limits{}.max_header_count}) {
        CAPTURE(limit);
        parser_limits limits;
        limits.max_header_count = limit;
        std::string fields;
        for (std::size_t i = 0; i < limit; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";

        request_parser ok(limits);
        ok.feed("GET / HTTP/1.1\r\n" + fields + "\r\n");
        REQUIRE(ok.status() == parse_status::done);
        CHECK(ok.get().headers.size() == limit);

        check_error({"GET / HTTP/1.1\r\n" + fields + "X-Last: v\r\n\r\n", 431, "too many header fields"}, limits);
    }
}

TEST_CASE("request parser: reset for the next request on the connection") {
    const std::string_view pipeline =
        "GET /first HTTP/1.1\r\nHost: a\r\nX-Only-First: 1\r\n\r\n"
        "POST /second?q HTTP/1.0\r\nHost: b\r\n\r\n";
    request_parser p;
    const auto used = p.feed(pipeline);
    REQUIRE(p.status() == parse_status::done);
    CHECK(p.get().path == "/first");

    p.reset();
    CHECK(p.status() == parse_status::need_more);
    CHECK(p.head_bytes() == 0);
    CHECK(p.feed(pipeline.substr(used)) == pipeline.size() - used);
    REQUIRE(p.status() == parse_status::done);
    const auto& second = p.get();
    CHECK(second.method == "POST");
    CHECK(second.target == "/second?q");
    CHECK(second.path == "/second");
    CHECK(second.query.raw() == "q");
    CHECK(second.version_minor == 0);
    CHECK(second.headers.size() == 1);
    CHECK(second.headers.get("Host") == "b");
    CHECK_FALSE(second.headers.contains("X-Only-First"));

    SUBCASE("reset clears an error and the tolerated empty line") {
        p.reset();
        p.feed("\r\n\r\n");
        CHECK(p.status() == parse_status::error);
        p.reset();
        CHECK(p.error_status() == 0);
        CHECK(p.error_message().empty());
        p.feed("\r\nGET / HTTP/1.1\r\n\r\n");
        CHECK(p.status() == parse_status::done);
        CHECK(p.get().query.empty());
    }
}

TEST_CASE("response parser: 101 Switching Protocols") {
    constexpr std::string_view head =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n";
    const std::string text = std::string(head) + "\x81\x05hello";

    response_parser whole;
    CHECK(whole.feed(text) == head.size());
    REQUIRE(whole.status() == parse_status::done);
    const auto& r = whole.get();
    CHECK(r.status_code == 101);
    CHECK(r.reason == "Switching Protocols");
    CHECK(r.version_major == 1);
    CHECK(r.version_minor == 1);
    CHECK(r.headers.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    response_parser bytewise;
    CHECK(feed_bytewise(bytewise, text) == head.size());
    REQUIRE(bytewise.status() == parse_status::done);
    CHECK(bytewise.get().status_code == 101);
    CHECK(bytewise.get().reason == "Switching Protocols");
    CHECK(bytewise.get().headers.size() == 3);

    for (std::size_t i = 0; i <= text.size(); ++i) {
        response_parser split;
        const std::string_view all = text;
        CHECK(feed_chunks(split, {all.substr(0, i), all.substr(i)}) == head.size());
        REQUIRE(split.status() == parse_status::done);
        CHECK(split.get().reason == "Switching Protocols");
    }
}

TEST_CASE("response parser: error responses and status line forms") {
    SUBCASE("an error answer leaves its body unread") {
        response_parser p;
        const std::string_view text = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello";
        CHECK(p.feed(text) == text.size() - 5);
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().status_code == 404);
        CHECK(p.get().reason == "Not Found");
        CHECK(p.get().headers.get("content-length") == "5");
    }
    SUBCASE("reason phrase may be empty or missing") {
        for (auto text : {"HTTP/1.1 200 \r\n\r\n"sv, "HTTP/1.1 200\r\n\r\n"sv, "HTTP/1.0 200\n\n"sv}) {
            response_parser p;
            p.feed(text);
            REQUIRE(p.status() == parse_status::done);
            CHECK(p.get().status_code == 200);
            CHECK(p.get().reason.empty());
        }
    }
    SUBCASE("reason phrase keeps spaces, tabs and obs-text") {
        response_parser p;
        p.feed("HTTP/1.1 426 Upgrade \tRequired \xe2\x9c\x93\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().reason == "Upgrade \tRequired \xe2\x9c\x93");
    }
    SUBCASE("malformed status lines") {
        const std::vector<error_case> cases{
            {"HTTP/1.1 20 OK\r\n\r\n", 400, "malformed status code"},
            {"HTTP/1.1 2000 OK\r\n\r\n", 400, "malformed status code"},
            {"HTTP/1.1 20x OK\r\n\r\n", 400, "malformed status code"},
            {"HTTP/1.1  200 OK\r\n\r\n", 400, "malformed status code"},
            {"HTTP/1.1 099 Low\r\n\r\n", 400, "malformed status code"},
            {"HTTP/1.1\r\n\r\n", 400, "malformed HTTP version"},
            {"HTTP/1.1200 OK\r\n\r\n", 400, "malformed HTTP version"},
            {"http/1.1 200 OK\r\n\r\n", 400, "malformed HTTP version"},
            {"\r\nHTTP/1.1 200 OK\r\n\r\n", 400, "malformed HTTP version"},
            {"HTTP/2.0 200 OK\r\n\r\n", 505, "HTTP version not supported"},
            {"HTTP/1.1 200 O\x01K\r\n\r\n", 400, "control character in reason phrase"},
            {"HTTP/1.1 200 OK\rX\r\n\r\n", 400, "CR not followed by LF"},
            {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", 400, "whitespace between header name and colon"},
        };
        for (const auto& c : cases) {
            CAPTURE(c.text);
            response_parser whole;
            whole.feed(c.text);
            CHECK(whole.status() == parse_status::error);
            CHECK(whole.error_status() == c.status);
            CHECK(whole.error_message() == c.message);
            response_parser bytewise;
            feed_bytewise(bytewise, c.text);
            CHECK(bytewise.error_status() == c.status);
            CHECK(bytewise.error_message() == c.message);
        }
    }
    SUBCASE("head size limit") {
        parser_limits limits;
        limits.max_head_bytes = 19;
        response_parser ok(limits);
        ok.feed("HTTP/1.1 200 OK\r\n\r\n");
        CHECK(ok.status() == parse_status::done);
        response_parser over(limits);
        over.feed("HTTP/1.1 200 OK!\r\n\r\n");
        CHECK(over.error_status() == 431);
        CHECK(over.error_message() == "response head too large");
    }
    SUBCASE("reset") {
        response_parser p;
        p.feed("HTTP/1.1 500 Oops\r\nX: 1\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        p.reset();
        p.feed("HTTP/1.1 204 No Content\r\n\r\n");
        REQUIRE(p.status() == parse_status::done);
        CHECK(p.get().status_code == 204);
        CHECK(p.get().reason == "No Content");
        CHECK(p.get().headers.empty());
    }
}

TEST_CASE("headers: lookups, lists and edits") {
    duplex::http::headers h;
    h.add("Connection", "keep-alive,  Upgrade ");
    h.add("Sec-WebSocket-Protocol", "chat, , superchat");
    h.add("sec-websocket-protocol", "v2.json");
    h.add("Sec-WebSocket-Extensions", "permessage-deflate; x=\"a,b\", other");
    h.add("Upgrade", "WebSocket");

    CHECK(h.size() == 5);
    CHECK(h.get("CONNECTION") == "keep-alive,  Upgrade ");
    CHECK_FALSE(h.get("Host").has_value());
    CHECK(h.contains("upgrade"));
    CHECK_FALSE(h.contains("Upgrad"));
    CHECK(h.count("Sec-WebSocket-Protocol") == 2);

    CHECK(h.has_token("connection", "upgrade"));
    CHECK(h.has_token("Connection", "Keep-Alive"));
    CHECK_FALSE(h.has_token("Connection", "close"));
    CHECK_FALSE(h.has_token("Connection", "keep"));
    CHECK(h.has_token("Upgrade", "websocket"));
    CHECK(h.has_token("Sec-WebSocket-Protocol", "v2.json"));
    CHECK_FALSE(h.has_token("Host", "x"));

    CHECK(h.tokens("Sec-WebSocket-Protocol") == std::vector<std::string_view>{"chat", "superchat", "v2.json"});
    CHECK(h.tokens("Sec-WebSocket-Extensions") ==
          std::vector<std::string_view>{"permessage-deflate; x=\"a,b\"", "other"});
    CHECK(h.tokens("Missing").empty());

    h.set("upgrade", "h2c");
    CHECK(h.count("Upgrade") == 1);
    CHECK(h.get("Upgrade") == "h2c");
    CHECK(h.erase("SEC-WEBSOCKET-PROTOCOL") == 2);
    CHECK_FALSE(h.contains("Sec-WebSocket-Protocol"));
    CHECK(h.size() == 3);
    h.clear();
    CHECK(h.empty());
}

TEST_CASE("headers: quoted strings with escapes in lists") {
    duplex::http::headers h;
    h.add("X", R"(a="q\",x", b)");
    CHECK(h.tokens("X") == std::vector<std::string_view>{R"(a="q\",x")", "b"});
}

TEST_CASE("response writer: status line, fields and the blank line") {
    CHECK(duplex::http::reason_phrase(101) == "Switching Protocols");
    CHECK(duplex::http::reason_phrase(426) == "Upgrade Required");
    CHECK(duplex::http::reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(duplex::http::reason_phrase(799).empty());

    duplex::http::headers h;
    h.add("Content-Length", "0");
    h.add("X-Tab", "a\tb");
    std::string out = "prefix";
    duplex::http::write_response_head(out, 404, h);
    CHECK(out == "prefixHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-Tab: a\tb\r\n\r\n");

    response_parser p;
    CHECK(p.feed(std::string_view(out).substr(6)) == out.size() - 6);
    REQUIRE(p.status() == parse_status::done);
    CHECK(p.get().status_code == 404);
    CHECK(p.get().reason == "Not Found");
    CHECK(p.get().headers.get("X-Tab") == "a\tb");

    out.clear();
    duplex::http::write_response_head(out, 799, {});
    CHECK(out == "HTTP/1.1 799 \r\n\r\n");

    out.clear();
    duplex::http::write_response_head(out, 200, "Fine", {});
    CHECK(out == "HTTP/1.1 200 Fine\r\n\r\n");
}

TEST_CASE("response writer: refuses what would split the head") {
    std::string out = "kept";
    duplex::http::headers injected;
    injected.add("X-Ok", "fine");
    injected.add("X-Evil", "a\r\nSet-Cookie: stolen=1");
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 200, injected), std::invalid_argument);
    CHECK(out == "kept");

    duplex::http::headers bad_name;
    bad_name.add("Bad Name", "v");
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 200, bad_name), std::invalid_argument);
    duplex::http::headers empty_name;
    empty_name.add("", "v");
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 200, empty_name), std::invalid_argument);
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 99, {}), std::invalid_argument);
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 1000, {}), std::invalid_argument);
    CHECK_THROWS_AS(duplex::http::write_response_head(out, 200, "OK\r\nX: y", {}), std::invalid_argument);
    CHECK(out == "kept");
}
