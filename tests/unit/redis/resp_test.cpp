#include <duplex/redis/resp.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace resp = duplex::redis::resp;
using namespace std::string_view_literals;
using namespace std::string_literals;

namespace {

// Parses `wire` fed one prefix at a time, as bytes arrive: every proper prefix must say need_more and
// the whole must parse complete, consuming exactly `wire`.
resp::reply parse_whole(std::string_view wire) {
    resp::reply r;
    for (std::size_t n = 0; n < wire.size(); ++n) {
        const auto partial = resp::parse(wire.substr(0, n), r);
        INFO("prefix of " << n << " bytes of " << wire.size());
        REQUIRE(partial.status == resp::status::need_more);
        CHECK(partial.consumed == 0);
    }
    const auto whole = resp::parse(wire, r);
    REQUIRE(whole.status == resp::status::complete);
    CHECK(whole.consumed == wire.size());
    return r;
}

}  // namespace

TEST_CASE("RESP2 commands are arrays of bulk strings") {
    std::string out;
    resp::append_command(out, "PUBLISH", "room:1", "hi");
    CHECK(out == "*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom:1\r\n$2\r\nhi\r\n");
    out.clear();
    const std::string_view parts[] = {"ab", "", "c\r\nd"};
    resp::append_array_header(out, 1);
    resp::append_bulk(out, parts);
    CHECK(out == "*1\r\n$6\r\nabc\r\nd\r\n");
    out.clear();
    const std::string_view args[] = {"SUBSCRIBE", "a", ""};
    resp::append_command_of(out, args);
    CHECK(out == "*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$0\r\n\r\n");
    // What we write we parse back the same.
    const auto r = parse_whole(out);
    REQUIRE(r.top.type == resp::kind::array);
    CHECK(r.top.integer == 3);
    CHECK(r.text(0) == "SUBSCRIBE");
    CHECK(r.text(1) == "a");
    CHECK(r.text(2) == "");
}

TEST_CASE("RESP2 replies of each type, split at every byte") {
    auto r = parse_whole("+OK\r\n");
    CHECK(r.top.type == resp::kind::simple_string);
    CHECK(r.top.text == "OK");

    r = parse_whole("-WRONGPASS invalid username-password pair\r\n");
    CHECK(r.is_error());
    CHECK(r.top.text == "WRONGPASS invalid username-password pair");

    r = parse_whole(":-42\r\n");
    CHECK(r.top.type == resp::kind::integer);
    CHECK(r.top.integer == -42);

    r = parse_whole("$-1\r\n");
    CHECK(r.top.type == resp::kind::null);
    r = parse_whole("*-1\r\n");
    CHECK(r.top.type == resp::kind::null);

    // A bulk string may hold CR LF and any byte; its length says where it ends.
    const std::string binary = "$7\r\na\r\n\0\xff\r\n\r\n"s;
    r = parse_whole(binary);
    CHECK(r.top.type == resp::kind::bulk_string);
    CHECK(r.top.text == "a\r\n\0\xff\r\n"sv);

    r = parse_whole("$0\r\n\r\n");
    CHECK(r.top.type == resp::kind::bulk_string);
    CHECK(r.top.text.empty());
}

TEST_CASE("RESP2 pub/sub pushes and the subscribed PING reply, split at every byte") {
    auto r = parse_whole("*3\r\n$7\r\nmessage\r\n$6\r\nroom:1\r\n$5\r\nhello\r\n");
    REQUIRE(r.element_count == 3);
    CHECK(r.elements[0].is("message"));
    CHECK(r.text(1) == "room:1");
    CHECK(r.text(2) == "hello");

    r = parse_whole("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n");
    CHECK(r.elements[0].is("subscribe"));
    CHECK(r.elements[2].type == resp::kind::integer);
    CHECK(r.elements[2].integer == 2);

    r = parse_whole("*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    CHECK(r.element_count == 2);
    CHECK(r.elements[0].is("pong"));

    r = parse_whole("*4\r\n$8\r\npmessage\r\n$2\r\nr*\r\n$2\r\nr1\r\n$1\r\nx\r\n");
    CHECK(r.element_count == 4);
    CHECK(r.text(3) == "x");
}

TEST_CASE("RESP2 nested and long arrays: the first elements kept, the rest checked and skipped") {
    auto r = parse_whole("*6\r\n:1\r\n*2\r\n+a\r\n$1\r\nb\r\n$-1\r\n-E\r\n:5\r\n+last\r\n");
    CHECK(r.top.integer == 6);
    REQUIRE(r.element_count == 4);
    CHECK(r.elements[0].integer == 1);
    CHECK(r.elements[1].type == resp::kind::array);
    CHECK(r.elements[1].integer == 2);
    CHECK(r.elements[2].type == resp::kind::null);
    CHECK(r.elements[3].type == resp::kind::error);

    r = parse_whole("*0\r\n");
    CHECK(r.top.type == resp::kind::array);
    CHECK(r.element_count == 0);
}

TEST_CASE("RESP2: replies back to back are parsed one at a time") {
    const std::string wire = "+PONG\r\n:3\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\np\r\n";
    std::string_view rest = wire;
    resp::reply r;
    auto p = resp::parse(rest, r);
    REQUIRE(p.status == resp::status::complete);
    CHECK(r.top.text == "PONG");
    rest.remove_prefix(p.consumed);
    p = resp::parse(rest, r);
    REQUIRE(p.status == resp::status::complete);
    CHECK(r.top.integer == 3);
    rest.remove_prefix(p.consumed);
    p = resp::parse(rest, r);
    REQUIRE(p.status == resp::status::complete);
    CHECK(r.text(2) == "p");
    rest.remove_prefix(p.consumed);
    CHECK(rest.empty());
    CHECK(resp::parse(rest, r).status == resp::status::need_more);
}

TEST_CASE("RESP2: what is not RESP2 is invalid, and so is what crosses a limit") {
    resp::reply r;
    for (const auto bad : {"?\r\n"sv, ":12a\r\n"sv, ":\r\n"sv, "$-2\r\n"sv, "$3\r\nabcX\r\n"sv, "$3\r\nabc\rX"sv,
                           "*-5\r\n"sv, "*1\r\n!\r\n"sv, "%2\r\n"sv, ">3\r\n"sv})
        CHECK_MESSAGE(resp::parse(bad, r).status == resp::status::invalid, bad);

    resp::limits small;
    small.max_bulk_bytes = 4;
    small.max_line_bytes = 8;
    small.max_array_elements = 2;
    small.max_depth = 2;
    CHECK(resp::parse("$5\r\n"sv, r, small).status == resp::status::invalid);  // before the bytes arrive
    CHECK(resp::parse("$4\r\nabcd\r\n"sv, r, small).status == resp::status::complete);
    CHECK(resp::parse("+123456789"sv, r, small).status == resp::status::invalid);  // no CR LF in sight
    CHECK(resp::parse("+1234567"sv, r, small).status == resp::status::need_more);
    CHECK(resp::parse("*3\r\n"sv, r, small).status == resp::status::invalid);
    CHECK(resp::parse("*1\r\n*1\r\n*1\r\n:1\r\n"sv, r, small).status == resp::status::invalid);
    CHECK(resp::parse("*1\r\n*1\r\n:1\r\n"sv, r, small).status == resp::status::complete);
}
