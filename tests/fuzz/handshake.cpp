// The opening handshake's pure functions on parsed heads. A request that validate_request accepts,
// answered by make_accept_response, passes the client's validate_response; a refused one gets a
// well-formed 400/426; a request rebuilt by make_request from a valid one validates again. Nothing
// throws but the documented std::invalid_argument (and std::bad_alloc).
//
// Input: one flag byte, a 16-bit length, that many bytes of request head, then a response head in which
// "{accept}" stands for the Sec-WebSocket-Accept of the fixed key below.
#include <duplex/websocket/handshake.hpp>

#include "fuzz_support.hpp"

#include <stdexcept>
#include <string>
#include <vector>

using namespace duplex;
using namespace duplex::ws;

namespace {

constexpr std::string_view client_key = "dGhlIHNhbXBsZSBub25jZQ==";

template <class Parser>
std::optional<typename std::remove_cvref_t<decltype(std::declval<Parser>().get())>> parse(std::string_view text) {
    Parser parser;
    parser.feed(text);
    if (parser.status() != http::parse_status::done) return std::nullopt;
    return std::move(parser.get());
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

void check_accepted(const http::request& r, std::uint8_t flags) {
    FUZZ_CHECK(handshake::is_upgrade_request(r));
    const auto key = std::string(*r.headers.get("Sec-WebSocket-Key"));
    FUZZ_CHECK(handshake::is_valid_key(key));
    const auto offered_views = handshake::requested_protocols(r);
    const std::vector<std::string> offered(offered_views.begin(), offered_views.end());
    std::string chosen;
    if ((flags & 1) && !offered.empty()) chosen = offered[(flags >> 1) % offered.size()];

    std::string answer;
    try {
        answer = handshake::make_accept_response(key, chosen);
    } catch (const std::invalid_argument&) {
        FUZZ_CHECK(!http::detail::is_token(chosen));  // documented: a sub-protocol must be a token
        return;
    }
    http::response_parser parser;
    FUZZ_CHECK(parser.feed(answer) == answer.size());
    FUZZ_CHECK(parser.status() == http::parse_status::done);
    const auto check = handshake::validate_response(parser.get(), key, offered);
    FUZZ_CHECK(static_cast<bool>(check));
    FUZZ_CHECK(check.sub_protocol == chosen);

    // make_error_response refuses a check that did not fail.
    bool refused = false;
    try {
        handshake::make_error_response(handshake::request_check{});
    } catch (const std::invalid_argument&) {
        refused = true;
    }
    FUZZ_CHECK(refused);

    // Rebuilt by a client, the request still validates and offers the same sub-protocols.
    std::vector<std::string> protocols;
    for (const auto& p : offered)
        if (http::detail::is_token(p)) protocols.push_back(p);
    http::headers extra;
    for (const auto& field : r.headers) {
        static constexpr std::string_view own[] = {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
                                                   "Sec-WebSocket-Version", "Sec-WebSocket-Protocol"};
        if (std::none_of(std::begin(own), std::end(own), [&](auto n) { return http::detail::iequals(n, field.name); }))
            extra.add(field.name, field.value);
    }
    std::string request;
    try {
        request = handshake::make_request(*r.headers.get("Host"), r.target, key, protocols, extra);
    } catch (const std::invalid_argument&) {
        FUZZ_CHECK(false);  // every piece came from a valid request
    }
    const auto rebuilt = parse<http::request_parser>(request);
    FUZZ_CHECK(rebuilt.has_value());
    FUZZ_CHECK(static_cast<bool>(handshake::validate_request(*rebuilt)));
    const auto again = handshake::requested_protocols(*rebuilt);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), protocols.begin(), protocols.end()));
}

void check_refused(const handshake::request_check& check) {
    FUZZ_CHECK(check.status == 400 || check.status == 426);
    FUZZ_CHECK(!check.message.empty());
    const auto answer = handshake::make_error_response(check);
    http::response_parser parser;
    const auto used = parser.feed(answer);
    FUZZ_CHECK(parser.status() == http::parse_status::done);
    const auto& response = parser.get();
    FUZZ_CHECK(response.status_code == check.status);
    FUZZ_CHECK(answer.substr(used) == check.message);
    FUZZ_CHECK(response.headers.get("Content-Length") == std::to_string(check.message.size()));
    if (check.status == 426) FUZZ_CHECK(response.headers.get("Sec-WebSocket-Version") == "13");
}

void check_response(std::string_view text, std::uint8_t flags) {
    const auto response = parse<http::response_parser>(text);
    if (!response) return;
    static const std::vector<std::string> offers[] = {{}, {"chat"}, {"chat", "superchat"}, {"v1.json", "v2.json", "x"}};
    const auto& offered = offers[(flags >> 4) & 3];
    const auto check = handshake::validate_response(*response, client_key, offered);
    if (!check) {
        FUZZ_CHECK(!check.error.empty() && check.sub_protocol.empty());
        return;
    }
    FUZZ_CHECK(response->status_code == 101);
    FUZZ_CHECK(response->headers.count("Sec-WebSocket-Accept") == 1);
    FUZZ_CHECK(*response->headers.get("Sec-WebSocket-Accept") == handshake::compute_accept(client_key));
    FUZZ_CHECK(check.sub_protocol.empty() ||
               std::find(offered.begin(), offered.end(), check.sub_protocol) != offered.end());
    FUZZ_CHECK(response->headers.has_token("Upgrade", "websocket"));
    FUZZ_CHECK(response->headers.has_token("Connection", "upgrade"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto flags = in.byte();
    const auto request_text = fuzz::as_text(in.bytes(in.u16()));
    const auto response_text = replace_all(std::string(fuzz::as_text(in.rest())), "{accept}",
                                           handshake::compute_accept(client_key));

    if (const auto request = parse<http::request_parser>(request_text)) {
        const auto check = handshake::validate_request(*request);
        if (check) check_accepted(*request, flags);
        else check_refused(check);
    }
    check_response(response_text, flags);
    return 0;
}
