#include <duplex/websocket/close_status.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace duplex;

namespace {
std::optional<ws::close_payload> parse(const std::string& payload, close_status& failure) {
    return ws::parse_close_payload(reinterpret_cast<const std::byte*>(payload.data()), payload.size(), failure);
}
std::string with_code(unsigned code, std::string reason = {}) {
    return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)} + reason;
}
}  // namespace

TEST_CASE("exactly the codes RFC 6455 allows on the wire are valid") {
    for (unsigned code = 0; code < 6000; ++code) {
        const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                              (code >= 3000 && code <= 4999);
        CHECK_MESSAGE(ws::is_valid_wire_code(static_cast<std::uint16_t>(code)) == expected, code);
    }
}

TEST_CASE("close payloads") {
    close_status failure{};
    SUBCASE("empty means no status") {
        auto p = parse("", failure);
        REQUIRE(p);
        CHECK(p->status == close_status::empty);
        CHECK(p->reason.empty());
    }
    SUBCASE("a code and a UTF-8 reason") {
        const auto payload = with_code(1001, "going away \xce\xba");
        auto p = parse(payload, failure);
        REQUIRE(p);
        CHECK(p->status == close_status::endpoint_unavailable);
        CHECK(p->reason == "going away \xce\xba");
    }
    SUBCASE("application codes are carried as numbers") {
        const auto payload = with_code(4999);
        auto p = parse(payload, failure);
        REQUIRE(p);
        CHECK(static_cast<unsigned>(p->status) == 4999);
    }
    SUBCASE("a 1-byte payload is a protocol error") {
        CHECK_FALSE(parse("\x03", failure));
        CHECK(failure == close_status::protocol_error);
    }
    SUBCASE("reserved and unassigned codes are protocol errors") {
        for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1012u, 1015u, 1016u, 2000u, 2999u, 5000u, 65535u}) {
            failure = {};
            CHECK_FALSE(parse(with_code(code), failure));
            CHECK(failure == close_status::protocol_error);
        }
    }
    SUBCASE("an invalid UTF-8 reason is invalid payload data") {
        CHECK_FALSE(parse(with_code(1000, "\xed\xa0\x80"), failure));
        CHECK(failure == close_status::invalid_payload_data);
    }
}
