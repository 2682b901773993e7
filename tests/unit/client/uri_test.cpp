#include <duplex/client/uri.hpp>

#include <doctest/doctest.h>

using duplex::client::parse_websocket_uri;

TEST_CASE("ws and wss URIs") {
    auto u = parse_websocket_uri("ws://example.com/chat?room=1");
    REQUIRE(u);
    CHECK_FALSE(u->secure);
    CHECK(u->host == "example.com");
    CHECK(u->port == 80);
    CHECK(u->target == "/chat?room=1");
    CHECK(u->host_header() == "example.com");

    u = parse_websocket_uri("WSS://Example.com:8443");
    REQUIRE(u);
    CHECK(u->secure);
    CHECK(u->port == 8443);
    CHECK(u->target == "/");
    CHECK(u->host_header() == "Example.com:8443");

    u = parse_websocket_uri("ws://[::1]:9001/getCaseCount");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == 9001);
    CHECK(u->host_header() == "[::1]:9001");

    u = parse_websocket_uri("ws://h:80?x");
    REQUIRE(u);
    CHECK(u->target == "/?x");
    CHECK(u->host_header() == "h");
}

TEST_CASE("malformed URIs are refused") {
    for (auto bad : {"http://x/", "ws://", "ws://:80/", "ws://x:0/", "ws://x:65536/", "ws://x:8a/", "ws://x/#frag",
                     "ws://user@x/", "ws://[::1/"}) {
        CHECK_MESSAGE(!parse_websocket_uri(bad), bad);
    }
}
