#include <duplex/websocket/handshake.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace handshake = duplex::ws::handshake;
using duplex::http::parse_status;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

constexpr std::string_view valid_request_head =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

duplex::http::request parse_request(std::string_view text) {
    duplex::http::request_parser parser;
    const auto used = parser.feed(text);
    REQUIRE(parser.status() == parse_status::done);
    CHECK(used == text.size());
    return std::move(parser.get());
}

duplex::http::response parse_response(std::string_view text, std::string_view* body = nullptr) {
    duplex::http::response_parser parser;
    const auto used = parser.feed(text);
    REQUIRE(parser.status() == parse_status::done);
    if (body)
        *body = text.substr(used);
    else
        CHECK(used == text.size());
    return std::move(parser.get());
}

// The valid request with one header line replaced (or removed when `replacement` is empty).
std::string request_with(std::string_view header_line, std::string_view replacement) {
    std::string text(valid_request_head);
    const auto at = text.find(header_line);
    REQUIRE(at != std::string::npos);
    text.replace(at, header_line.size() + 2, replacement.empty() ? std::string() : std::string(replacement) + "\r\n");
    return text;
}

std::string accept_head(std::string_view extra_lines) {
    return "HTTP/1.1 101 Switching Protocols\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
           std::string(rfc_accept) + "\r\n" + std::string(extra_lines) + "\r\n";
}

}  // namespace

TEST_CASE("handshake: RFC 6455 §1.3 example") {
    CHECK(handshake::compute_accept(rfc_key) == rfc_accept);
    CHECK(handshake::guid == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
}

TEST_CASE("handshake: generate_key gives valid, distinct keys") {
    std::set<std::string> keys;
    for (int i = 0; i < 200; ++i) {
        const auto key = handshake::generate_key();
        CHECK(key.size() == 24);
        CHECK(handshake::is_valid_key(key));
        CHECK(handshake::compute_accept(key).size() == 28);
        keys.insert(key);
    }
    CHECK(keys.size() == 200);
}

TEST_CASE("handshake: is_valid_key") {
    CHECK(handshake::is_valid_key(rfc_key));
    CHECK(handshake::is_valid_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    CHECK(handshake::is_valid_key("/+/+/+/+/+/+/+/+/+/+/w=="));
    CHECK_FALSE(handshake::is_valid_key(""));
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZQ"));      // no padding
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZQ="));     // 23 characters
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZQ==="));   // 25 characters
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZ==="));    // 15 bytes
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZQ=A"));    // padding in the wrong place
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub2=jZQ=="));    // '=' inside
    CHECK_FALSE(handshake::is_valid_key(" GhlIHNhbXBsZSBub25jZQ=="));    // leading space
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZ Q=="));   // inner space
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZ-=="));    // base64url alphabet
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZSBh"));    // 18 bytes
    CHECK_FALSE(handshake::is_valid_key("dGhlIHNhbXBsZSBub25jZQ==dGhl"));
}

TEST_CASE("handshake: is_upgrade_request and requested_protocols") {
    const auto r = parse_request(valid_request_head);
    CHECK(handshake::is_upgrade_request(r));
    CHECK(handshake::requested_protocols(r) == std::vector<std::string_view>{"chat", "superchat"});

    CHECK(handshake::is_upgrade_request(parse_request(
        "GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\nUpgrade: WebSocket\r\n\r\n")));
    CHECK_FALSE(handshake::is_upgrade_request(parse_request(
        "POST / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")));
    CHECK_FALSE(handshake::is_upgrade_request(parse_request("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n")));
    CHECK_FALSE(handshake::is_upgrade_request(parse_request("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")));
    CHECK_FALSE(handshake::is_upgrade_request(parse_request(
        "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")));

    const auto several = parse_request(
        "GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b , c\r\n\r\n");
    CHECK(handshake::requested_protocols(several) == std::vector<std::string_view>{"a", "b", "c"});
    CHECK(handshake::requested_protocols(parse_request("GET / HTTP/1.1\r\n\r\n")).empty());
}

TEST_CASE("handshake: validate_request accepts a valid handshake") {
    const auto check = handshake::validate_request(parse_request(valid_request_head));
    CHECK(check);
    CHECK(check.status == 0);
    CHECK(check.message.empty());

    // Token lists, case and a newer minor version are fine.
    const auto relaxed = parse_request(
        "GET / HTTP/1.2\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n");
    CHECK(handshake::validate_request(relaxed));
}

TEST_CASE("handshake: each validate_request failure and its status") {
    struct failure_case {
        std::string text;
        int status;
        std::string_view message;
    };
    const std::string valid(valid_request_head);
    std::string post = valid;
    post.replace(0, 3, "POST");
    std::string http10 = valid;
    http10.replace(http10.find("HTTP/1.1"), 8, "HTTP/1.0");

    const std::vector<failure_case> cases{
        {post, 400, "WebSocket handshake requires GET, got POST"},
        {http10, 400, "WebSocket handshake requires HTTP/1.1 or newer"},
        {request_with("Host: server.example.com", ""), 400, "missing Host header"},
        {request_with("Host: server.example.com", "Host: a\r\nHost: b"), 400, "more than one Host header"},
        {request_with("Host: server.example.com", "Host:"), 400, "empty Host header"},
        {request_with("Upgrade: websocket", ""), 400, "Upgrade header must list \"websocket\""},
        {request_with("Upgrade: websocket", "Upgrade: h2c"), 400, "Upgrade header must list \"websocket\""},
        {request_with("Connection: Upgrade", ""), 400, "Connection header must list \"Upgrade\""},
        {request_with("Connection: Upgrade", "Connection: keep-alive"), 400, "Connection header must list \"Upgrade\""},
        {request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", ""), 400, "missing Sec-WebSocket-Key header"},
        {request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
         400, "more than one Sec-WebSocket-Key header"},
        {request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"),
         400, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes"},
        {request_with("Sec-WebSocket-Version: 13", ""), 400,
         "missing Sec-WebSocket-Version header (this server speaks version 13)"},
        {request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 426,
         "unsupported Sec-WebSocket-Version (this server speaks version 13)"},
        {request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13, 8"), 426,
         "unsupported Sec-WebSocket-Version (this server speaks version 13)"},
        {request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13"), 426,
         "unsupported Sec-WebSocket-Version (this server speaks version 13)"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto check = handshake::validate_request(parse_request(c.text));
        CHECK_FALSE(check);
        CHECK(check.status == c.status);
        CHECK(check.message == c.message);
    }
}

TEST_CASE("handshake: make_error_response") {
    SUBCASE("400") {
        const handshake::request_check failure{400, "missing Host header"};
        const auto text = handshake::make_error_response(failure);
        std::string_view body;
        const auto r = parse_response(text, &body);
        CHECK(r.status_code == 400);
        CHECK(r.reason == "Bad Request");
        CHECK(r.headers.get("Content-Type") == "text/plain; charset=utf-8");
        CHECK(r.headers.get("Content-Length") == std::to_string(failure.message.size()));
        CHECK(r.headers.has_token("Connection", "close"));
        CHECK_FALSE(r.headers.contains("Sec-WebSocket-Version"));
        CHECK(body == failure.message);
    }
    SUBCASE("426 names the version and the protocol") {
        const auto failure = handshake::validate_request(
            parse_request(request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")));
        const auto text = handshake::make_error_response(failure);
        std::string_view body;
        const auto r = parse_response(text, &body);
        CHECK(r.status_code == 426);
        CHECK(r.reason == "Upgrade Required");
        CHECK(r.headers.get("Sec-WebSocket-Version") == "13");
        CHECK(r.headers.has_token("Upgrade", "websocket"));
        CHECK(r.headers.has_token("Connection", "upgrade"));
        CHECK(r.headers.has_token("Connection", "close"));
        CHECK(body == failure.message);
    }
    SUBCASE("a passed check is not an error") {
        CHECK_THROWS_AS(handshake::make_error_response(handshake::request_check{}), std::invalid_argument);
    }
}

TEST_CASE("handshake: make_accept_response parses back and satisfies the client") {
    const std::vector<std::string> offered{"chat", "superchat"};
    SUBCASE("without a subprotocol") {
        const auto text = handshake::make_accept_response(rfc_key, "");
        CHECK(text ==
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
        const auto r = parse_response(text);
        CHECK(r.status_code == 101);
        CHECK_FALSE(r.headers.contains("Sec-WebSocket-Protocol"));
        const auto check = handshake::validate_response(r, rfc_key, {});
        CHECK(check);
        CHECK(check.sub_protocol.empty());
        CHECK(handshake::validate_response(r, rfc_key, offered));
    }
    SUBCASE("with a subprotocol and extra headers") {
        duplex::http::headers extra;
        extra.add("Server", "duplex");
        const auto r = parse_response(handshake::make_accept_response(rfc_key, "superchat", extra));
        CHECK(r.headers.get("Sec-WebSocket-Protocol") == "superchat");
        CHECK(r.headers.get("Server") == "duplex");
        const auto check = handshake::validate_response(r, rfc_key, offered);
        CHECK(check);
        CHECK(check.sub_protocol == "superchat");
    }
    SUBCASE("invalid input is refused") {
        CHECK_THROWS_AS(handshake::make_accept_response(rfc_key, "bad protocol"), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_accept_response(rfc_key, "chat\r\nX: y"), std::invalid_argument);
        duplex::http::headers evil;
        evil.add("X", "a\nb");
        CHECK_THROWS_AS(handshake::make_accept_response(rfc_key, "", evil), std::invalid_argument);
    }
}

TEST_CASE("handshake: make_request parses back and passes validate_request") {
    const auto key = handshake::generate_key();
    const std::vector<std::string> protocols{"chat", "v2.json"};
    duplex::http::headers extra;
    extra.add("Origin", "https://client.example");

    const auto text = handshake::make_request("server.example.com:8443", "/ws?room=1", key, protocols, extra);
    const auto r = parse_request(text);
    CHECK(r.method == "GET");
    CHECK(r.path == "/ws");
    CHECK(r.query.raw() == "room=1");
    CHECK(r.headers.get("Host") == "server.example.com:8443");
    CHECK(r.headers.get("Sec-WebSocket-Key") == key);
    CHECK(r.headers.get("Sec-WebSocket-Version") == "13");
    CHECK(r.headers.get("Origin") == "https://client.example");
    CHECK(handshake::is_upgrade_request(r));
    CHECK(handshake::validate_request(r));
    CHECK(handshake::requested_protocols(r) == std::vector<std::string_view>{"chat", "v2.json"});

    const auto plain = parse_request(handshake::make_request("h", "/", key, {}));
    CHECK_FALSE(plain.headers.contains("Sec-WebSocket-Protocol"));
    CHECK(handshake::validate_request(plain));

    SUBCASE("invalid input is refused") {
        CHECK_THROWS_AS(handshake::make_request("h", "", key, {}), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_request("h", "/a b", key, {}), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_request("h", "/\r\nX: y", key, {}), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_request("", "/", key, {}), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_request("h\r\nX: y", "/", key, {}), std::invalid_argument);
        CHECK_THROWS_AS(handshake::make_request("h", "/", "not a key", {}), std::invalid_argument);
        const std::vector<std::string> bad_protocols{"chat", "two words"};
        CHECK_THROWS_AS(handshake::make_request("h", "/", key, bad_protocols), std::invalid_argument);
        const std::vector<std::string> empty_protocol{""};
        CHECK_THROWS_AS(handshake::make_request("h", "/", key, empty_protocol), std::invalid_argument);
    }
}

TEST_CASE("handshake: client and server agree end to end") {
    const auto key = handshake::generate_key();
    const std::vector<std::string> offered{"v1.chat", "v2.chat"};

    const auto server_view = parse_request(handshake::make_request("localhost:5000", "/ws", key, offered));
    REQUIRE(handshake::validate_request(server_view));
    const auto requested = handshake::requested_protocols(server_view);
    REQUIRE(requested.size() == 2);
    const auto answer = handshake::make_accept_response(*server_view.headers.get("Sec-WebSocket-Key"), requested[1]);

    const auto check = handshake::validate_response(parse_response(answer), key, offered);
    CHECK(check);
    CHECK(check.error.empty());
    CHECK(check.sub_protocol == "v2.chat");

    CHECK_FALSE(handshake::validate_response(parse_response(answer), handshake::generate_key(), offered));
}

TEST_CASE("handshake: each validate_response failure") {
    const std::vector<std::string> offered{"chat"};
    const std::vector<std::string> none;
    struct failure_case {
        std::string text;
        std::span<const std::string> offered;
        std::string_view error;
    };
    std::string no_upgrade = accept_head("");
    no_upgrade.erase(no_upgrade.find("Upgrade: websocket\r\n"), 20);
    std::string no_connection = accept_head("");
    no_connection.erase(no_connection.find("Connection: Upgrade\r\n"), 21);
    std::string no_accept = accept_head("");
    no_accept.erase(no_accept.find("Sec-WebSocket-Accept"), 22 + rfc_accept.size() + 2);
    std::string wrong_accept = accept_head("");
    wrong_accept.replace(wrong_accept.find(rfc_accept), rfc_accept.size(), handshake::compute_accept("AAAAAAAAAAAAAAAAAAAAAA=="));

    const std::vector<failure_case> cases{
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", offered,
         "server answered 403 Forbidden instead of 101 Switching Protocols"},
        {"HTTP/1.1 200\r\n\r\n", offered, "server answered 200 instead of 101 Switching Protocols"},
        {no_upgrade, offered, "Upgrade header must list \"websocket\""},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         offered, "Upgrade header must list \"websocket\""},
        {no_connection, offered, "Connection header must list \"Upgrade\""},
        {no_accept, offered, "missing Sec-WebSocket-Accept header"},
        {wrong_accept, offered, "Sec-WebSocket-Accept does not match the key sent"},
        {accept_head("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), offered,
         "Sec-WebSocket-Accept does not match the key sent"},
        {accept_head("Sec-WebSocket-Protocol: superchat\r\n"), offered,
         "server selected a subprotocol that was not offered"},
        {accept_head("Sec-WebSocket-Protocol: CHAT\r\n"), offered, "server selected a subprotocol that was not offered"},
        {accept_head("Sec-WebSocket-Protocol: chat\r\n"), none,
         "server selected a subprotocol although none was offered"},
        {accept_head("Sec-WebSocket-Protocol: chat, chat\r\n"), offered, "server selected more than one subprotocol"},
        {accept_head("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"), offered,
         "server selected more than one subprotocol"},
        {accept_head("Sec-WebSocket-Extensions: permessage-deflate\r\n"), offered,
         "server selected an extension that was not offered"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto check = handshake::validate_response(parse_response(c.text), rfc_key, c.offered);
        CHECK_FALSE(check);
        CHECK(check.error == c.error);
        CHECK(check.sub_protocol.empty());
    }

    CHECK(handshake::validate_response(parse_response(accept_head("Sec-WebSocket-Protocol: chat\r\n")), rfc_key, offered));
    CHECK(handshake::validate_response(parse_response(accept_head("Sec-WebSocket-Extensions:\r\n")), rfc_key, offered));
}
