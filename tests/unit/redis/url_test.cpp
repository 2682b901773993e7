#include <duplex/redis/url.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using duplex::redis::parse_url;

TEST_CASE("Redis URLs: redis://[[user]:password@]host[:port][/db] and rediss://") {
    auto e = parse_url("redis://127.0.0.1:6390");
    CHECK_FALSE(e.tls);
    CHECK(e.host == "127.0.0.1");
    CHECK(e.port == 6390);
    CHECK(e.user.empty());
    CHECK(e.password.empty());
    CHECK(e.database == 0);

    e = parse_url("redis://localhost");
    CHECK(e.host == "localhost");
    CHECK(e.port == 6379);

    e = parse_url("rediss://:s3cret@cache.example:6380/2");
    CHECK(e.tls);
    CHECK(e.user.empty());
    CHECK(e.password == "s3cret");
    CHECK(e.port == 6380);
    CHECK(e.database == 2);
    CHECK(e.redacted() == "rediss://:***@cache.example:6380/2");

    e = parse_url("redis://app:p%40ss%3Aw%2Fd@[::1]:7000/15");
    CHECK(e.user == "app");
    CHECK(e.password == "p@ss:w/d");
    CHECK(e.host == "::1");
    CHECK(e.port == 7000);
    CHECK(e.database == 15);
    CHECK(e.address() == "[::1]:7000");
    CHECK(e.redacted() == "redis://app:***@[::1]:7000/15");

    e = parse_url("redis://[::1]");
    CHECK(e.host == "::1");
    CHECK(e.port == 6379);
}

TEST_CASE("Redis URLs that are refused, without showing the password") {
    for (const char* bad : {"http://h:1", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h:",
                            "redis://h/x", "redis://h/-1", "redis://h?db=1", "redis://[::1", "redis://[::1]x",
                            "redis://u@h", "redis://:%zz@h", "redis://:%4@h"})
        CHECK_THROWS_AS_MESSAGE(parse_url(bad), std::invalid_argument, bad);
    try {
        parse_url("redis://user:hunter2@h:99999");
        FAIL("accepted");
    } catch (const std::invalid_argument& e) {
        const std::string message = e.what();
        CHECK(message.find("hunter2") == std::string::npos);
        CHECK(message.find("bad port") != std::string::npos);
    }
}
