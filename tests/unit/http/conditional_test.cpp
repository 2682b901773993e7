#include <duplex/http/conditional.hpp>
#include <duplex/http/parser.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace duplex::http;

namespace {

request with_headers(const std::string& method, const std::string& fields) {
    request_parser parser;
    parser.feed(method + " /f HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n");
    REQUIRE(parser.status() == parse_status::done);
    return parser.get();
}

// A file of 1000 bytes last modified at RFC 9110's example date.
const file_validators file = make_file_validators(1000, 784111777, 5);

}  // namespace

TEST_CASE("validators: a strong ETag from size and modification time, Last-Modified as an HTTP date") {
    CHECK(file.etag == "\"2ebc98a1.5-3e8\"");
    CHECK(file.last_modified == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(make_file_validators(1001, 784111777, 5).etag != file.etag);
    CHECK(make_file_validators(1000, 784111777, 6).etag != file.etag);
}

TEST_CASE("If-None-Match: weak comparison, lists and *; it decides over If-Modified-Since") {
    CHECK(is_not_modified(with_headers("GET", "If-None-Match: \"2ebc98a1.5-3e8\"\r\n"), file));
    CHECK(is_not_modified(with_headers("HEAD", "If-None-Match: W/\"2ebc98a1.5-3e8\"\r\n"), file));
    CHECK(is_not_modified(with_headers("GET", "If-None-Match: \"x\", \"2ebc98a1.5-3e8\"\r\n"), file));
    CHECK(is_not_modified(with_headers("GET", "If-None-Match: *\r\n"), file));
    CHECK(!is_not_modified(with_headers("GET", "If-None-Match: \"x\"\r\n"), file));
    CHECK(!is_not_modified(with_headers("GET", "If-None-Match: \"x\"\r\nIf-Modified-Since: " + file.last_modified + "\r\n"),
                           file));
    CHECK(!is_not_modified(with_headers("POST", "If-None-Match: *\r\n"), file));
}

TEST_CASE("If-Modified-Since: 304 unless the file is newer; an invalid date is ignored") {
    CHECK(is_not_modified(with_headers("GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), file));
    CHECK(is_not_modified(with_headers("GET", "If-Modified-Since: Sunday, 06-Nov-94 08:49:38 GMT\r\n"), file));
    CHECK(!is_not_modified(with_headers("GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n"), file));
    CHECK(!is_not_modified(with_headers("GET", "If-Modified-Since: tomorrow\r\n"), file));
    CHECK(!is_not_modified(with_headers("GET", ""), file));
}

TEST_CASE("If-Range: the Range applies for the same ETag (strong) or exactly the Last-Modified date") {
    CHECK(range_applies(with_headers("GET", ""), file));
    CHECK(range_applies(with_headers("GET", "If-Range: \"2ebc98a1.5-3e8\"\r\n"), file));
    CHECK(!range_applies(with_headers("GET", "If-Range: W/\"2ebc98a1.5-3e8\"\r\n"), file));
    CHECK(!range_applies(with_headers("GET", "If-Range: \"other\"\r\n"), file));
    CHECK(range_applies(with_headers("GET", "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), file));
    CHECK(!range_applies(with_headers("GET", "If-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n"), file));
}
