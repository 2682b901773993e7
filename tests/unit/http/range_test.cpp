#include <duplex/http/range.hpp>

#include <doctest/doctest.h>

using duplex::http::parse_byte_range;
using outcome = duplex::http::byte_range_request::outcome;

TEST_CASE("one byte range: first-last, first-, -suffix, clipped to the end") {
    const auto check = [](const char* field, std::uint64_t first, std::uint64_t last) {
        const auto r = parse_byte_range(field, 1000);
        CHECK_MESSAGE(r.result == outcome::partial, field);
        CHECK_MESSAGE(r.first == first, field);
        CHECK_MESSAGE(r.last == last, field);
    };
    check("bytes=0-0", 0, 0);
    check("bytes=10-19", 10, 19);
    check("bytes=990-", 990, 999);
    check("bytes=-5", 995, 999);
    check("bytes=-5000", 0, 999);
    check("bytes=995-5000", 995, 999);
    check("Bytes= 1-2 ", 1, 2);
    CHECK(parse_byte_range("bytes=10-19", 1000).size() == 10);
}

TEST_CASE("ranges past the end are unsatisfiable (416)") {
    CHECK(parse_byte_range("bytes=1000-", 1000).result == outcome::unsatisfiable);
    CHECK(parse_byte_range("bytes=1000-2000", 1000).result == outcome::unsatisfiable);
    CHECK(parse_byte_range("bytes=-0", 1000).result == outcome::unsatisfiable);
    CHECK(parse_byte_range("bytes=0-", 0).result == outcome::unsatisfiable);
    CHECK(parse_byte_range("bytes=-5", 0).result == outcome::unsatisfiable);
}

TEST_CASE("what is not one well-formed byte range is ignored: the whole file") {
    for (const auto* field : {"", "bytes", "bytes=", "bytes=-", "bytes=5-2", "bytes=a-b", "bytes=1-2x", "items=0-1",
                              "bytes=0-1,5-6", "bytes=0-1, 5-6", "bytes 0-1", "bytes=18446744073709551616-"})
        CHECK_MESSAGE(parse_byte_range(field, 1000).result == outcome::whole, field);
}
