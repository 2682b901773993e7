#include <duplex/http/query.hpp>
#include <duplex/http/parser.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using duplex::http::query_collection;

TEST_CASE("query: the first value of a name, decoded, and nothing for a missing name") {
    const query_collection q("room=lobby&name=Ada+L%C3%A9&empty=&flag");
    CHECK(q("room") == "lobby");
    CHECK(q("name") == "Ada L\xC3\xA9");
    CHECK(q("empty") == "");
    CHECK(q("flag") == "");  // a name without '=' has an empty value, as URLSearchParams gives
    CHECK_FALSE(q("missing").has_value());
    CHECK(q.contains("flag"));
    CHECK_FALSE(q.contains("fla"));
    CHECK(q.raw() == "room=lobby&name=Ada+L%C3%A9&empty=&flag");
}

TEST_CASE("query: names match without regard to ASCII case, as in ASP.NET") {
    const query_collection q("Room=a");
    CHECK(q("room") == "a");
    CHECK(q("ROOM") == "a");
}

TEST_CASE("query: every value of a repeated name, in order") {
    const query_collection q("tag=a&x=1&tag=b&TAG=c");
    CHECK(q.all("tag") == std::vector<std::string>{"a", "b", "c"});
    CHECK(q("tag") == "a");
    CHECK(q.all("none").empty());
}

TEST_CASE("query: percent-escapes and plus signs") {
    CHECK(duplex::http::decode_query_component("a%20b+c%2Bd%26e%3D") == "a b c+d&e=");
    CHECK(duplex::http::decode_query_component("%41%4a%4A") == "AJJ");
    // An escaped '&' or '=' belongs to the value, not to the query's structure.
    const query_collection q("text=1%262%3D3&name%3D=x");
    CHECK(q("text") == "1&2=3");
    CHECK(q("name=") == "x");
}

TEST_CASE("query: malformed escapes stay as written") {
    CHECK(duplex::http::decode_query_component("%") == "%");
    CHECK(duplex::http::decode_query_component("100%") == "100%");
    CHECK(duplex::http::decode_query_component("%4") == "%4");
    CHECK(duplex::http::decode_query_component("%zz%4g") == "%zz%4g");
    CHECK(duplex::http::decode_query_component("%%41") == "%A");
    const query_collection q("a=%E2%82&b=%");
    CHECK(q("a") == "\xE2\x82");  // bytes as sent: not UTF-8 checked
    CHECK(q("b") == "%");
}

TEST_CASE("query: iteration yields every parameter in order and skips empty pieces") {
    const query_collection q("&a=1&&b=two+words&c&=v&");
    std::vector<std::pair<std::string, std::string>> seen;
    for (const auto& [name, value] : q) seen.emplace_back(name, value);
    const std::vector<std::pair<std::string, std::string>> expected{{"a", "1"}, {"b", "two words"}, {"c", ""}, {"", "v"}};
    CHECK(seen == expected);
    CHECK(query_collection("").begin() == query_collection("").end());
    CHECK(query_collection("&&").begin() == query_collection("&&").end());
}

TEST_CASE("query: the parser fills it from the request target") {
    duplex::http::request_parser parser;
    parser.feed("GET /chat?room=r%201&name=n HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(parser.status() == duplex::http::parse_status::done);
    const auto& request = parser.get();
    CHECK(request.path == "/chat");
    CHECK(request.query("room") == "r 1");
    CHECK(request.query("name") == "n");
}
