#include <duplex/client/proxy.hpp>

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace duplex::client;

TEST_CASE("proxy URIs: schemes, default ports, credentials") {
    auto p = parse_proxy_uri("http://127.0.0.1:8888");
    REQUIRE(p);
    CHECK(p->kind == proxy_kind::http_connect);
    CHECK(p->host == "127.0.0.1");
    CHECK(p->port == 8888);
    CHECK_FALSE(p->has_credentials());
    CHECK(p->authority() == "127.0.0.1:8888");

    p = parse_proxy_uri("HTTP://proxy.example/");
    REQUIRE(p);
    CHECK(p->port == 80);

    p = parse_proxy_uri("proxy.example:3128");  // no scheme: HTTP, as curl and .NET read it
    REQUIRE(p);
    CHECK(p->kind == proxy_kind::http_connect);
    CHECK(p->port == 3128);

    p = parse_proxy_uri("socks5://[::1]");
    REQUIRE(p);
    CHECK(p->kind == proxy_kind::socks5);
    CHECK(p->host == "::1");
    CHECK(p->port == 1080);
    CHECK(p->authority() == "[::1]:1080");

    p = parse_proxy_uri("socks5h://bob:pa%3Ass%40word@socks.example:1081");
    REQUIRE(p);
    CHECK(p->kind == proxy_kind::socks5h);
    CHECK(p->has_credentials());
    CHECK(p->username == "bob");
    CHECK(p->password == "pa:ss@word");
    CHECK(p->authority() == "socks.example:1081");  // never the credentials

    p = parse_proxy_uri("http://alice@127.0.0.1:8888");
    REQUIRE(p);
    CHECK(p->username == "alice");
    CHECK(p->password.empty());
}

TEST_CASE("malformed proxy URIs and unsupported schemes are refused") {
    for (auto bad : {"", "https://127.0.0.1:8443", "socks4://127.0.0.1:1080", "ftp://x", "http://", "http://:8080",
                     "http://x:0", "http://x:65536", "http://x/path", "http://x?q", "http://@x", "http://a:%zz@x",
                     "http://%4@x", "http://[::1"}) {
        CHECK_MESSAGE(!parse_proxy_uri(bad), bad);
    }
}

TEST_CASE("no_proxy: *, host names with their subdomains, addresses; ports and case ignored") {
    CHECK(bypasses_proxy("*", "example.com"));
    CHECK(bypasses_proxy("example.com", "example.com"));
    CHECK(bypasses_proxy("example.com", "ws.EXAMPLE.com"));
    CHECK(bypasses_proxy(".example.com", "example.com"));
    CHECK(bypasses_proxy(".example.com", "a.b.example.com"));
    CHECK_FALSE(bypasses_proxy("example.com", "badexample.com"));
    CHECK_FALSE(bypasses_proxy("example.com", "example.com.evil"));
    CHECK(bypasses_proxy("localhost, 127.0.0.1 ,::1", "127.0.0.1"));
    CHECK(bypasses_proxy("localhost,127.0.0.1,::1", "::1"));
    CHECK(bypasses_proxy("[::1]:8080", "::1"));
    CHECK(bypasses_proxy("internal:8080", "internal"));
    CHECK_FALSE(bypasses_proxy("127.0.0.1", "127.0.0.10"));
    CHECK_FALSE(bypasses_proxy("", "example.com"));
    CHECK_FALSE(bypasses_proxy(" , ", "example.com"));
}

namespace {
// An environment of our own instead of the process's.
environment_lookup environment(std::map<std::string, std::string> variables) {
    return [variables = std::move(variables)](std::string_view name) -> std::optional<std::string> {
        const auto found = variables.find(std::string(name));
        if (found == variables.end()) return std::nullopt;
        return found->second;
    };
}
websocket_uri uri(std::string_view text) { return *parse_websocket_uri(text); }
}  // namespace

TEST_CASE("the environment's proxy: https_proxy for wss://, http_proxy for ws://, all_proxy otherwise") {
    const auto env = environment({{"http_proxy", "http://plain:1"}, {"https_proxy", "http://secure:2"},
                                  {"all_proxy", "socks5h://all:3"}});
    CHECK(proxy_from_environment(uri("ws://example.com/"), env) == "http://plain:1");
    CHECK(proxy_from_environment(uri("wss://example.com/"), env) == "http://secure:2");
    CHECK(proxy_from_environment(uri("wss://example.com/"), environment({{"all_proxy", "socks5h://all:3"}})) ==
          "socks5h://all:3");
    CHECK(proxy_from_environment(uri("ws://example.com/"), environment({})).empty());
}

TEST_CASE("the environment's proxy: upper-case names, lower-case first, HTTP_PROXY ignored in CGI") {
    CHECK(proxy_from_environment(uri("ws://h/"), environment({{"HTTP_PROXY", "http://upper:1"}})) == "http://upper:1");
    CHECK(proxy_from_environment(uri("wss://h/"), environment({{"HTTPS_PROXY", "http://upper:2"}})) == "http://upper:2");
    CHECK(proxy_from_environment(uri("ws://h/"), environment({{"ALL_PROXY", "socks5://upper:3"}})) == "socks5://upper:3");
    CHECK(proxy_from_environment(uri("ws://h/"), environment({{"http_proxy", "http://lower:1"},
                                                              {"HTTP_PROXY", "http://upper:1"}})) == "http://lower:1");
    CHECK(proxy_from_environment(uri("ws://h/"), environment({{"HTTP_PROXY", "http://injected:1"},
                                                              {"GATEWAY_INTERFACE", "CGI/1.1"}}))
              .empty());
}

TEST_CASE("the environment's proxy: no_proxy (or NO_PROXY) sends the listed hosts direct") {
    const std::map<std::string, std::string> base{{"http_proxy", "http://p:1"}, {"https_proxy", "http://p:2"}};
    auto with = base;
    with["no_proxy"] = "localhost,.internal.example";
    CHECK(proxy_from_environment(uri("ws://localhost:5000/"), environment(with)).empty());
    CHECK(proxy_from_environment(uri("wss://ws.internal.example/"), environment(with)).empty());
    CHECK(proxy_from_environment(uri("ws://example.com/"), environment(with)) == "http://p:1");
    with = base;
    with["NO_PROXY"] = "*";
    CHECK(proxy_from_environment(uri("wss://example.com/"), environment(with)).empty());
}
