// permessage-deflate negotiation (RFC 7692 §7.1) on arbitrary Sec-WebSocket-Extensions values, both roles.
// Nothing throws (the options are always valid), and:
// - server: select_offer accepts the first element that parse_parameters takes as an offer, or none when
//   no element is a valid offer; what it agrees honours that offer (its requests, its window limits) and
//   our own limits; its response parses as a response and, checked by validate_response with the options
//   a client sending that offer would have, is accepted with the same parameters;
// - client: validate_response on an arbitrary answer to make_offer(ours) either fails or agrees on
//   parameters that keep every promise the offer asked for; the same answer written canonically validates
//   to the same parameters; and a server answering make_offer(ours) is accepted.
//
// Input: a byte of server options, a byte of client options, a 16-bit length, that many bytes of the
// request's Sec-WebSocket-Extensions value (the offers), then the response's value (the answer).
#include <duplex/deflate/negotiation.hpp>

#include "fuzz_support.hpp"

#include <string>
#include <vector>

using namespace duplex;
using namespace duplex::deflate;

namespace {

// Windows 8-15 each; the two context takeover switches.
options options_from(std::uint8_t b) {
    options o;
    o.server_max_window_bits = 8 + (b & 7);
    o.client_max_window_bits = 8 + ((b >> 3) & 7);
    o.disable_server_context_takeover = (b & 0x40) != 0;
    o.disable_client_context_takeover = (b & 0x80) != 0;
    return o;
}

bool valid_window(int bits) { return bits >= min_window_bits && bits <= max_window_bits; }

bool valid(const negotiated& n) {
    return valid_window(n.server_max_window_bits) && valid_window(n.client_max_window_bits);
}

// A response's parameters written the plain way: fixed order, lower case, no quotes, single spaces.
std::string canonical_response(const parameters& p) {
    std::string out(extension_name);
    if (p.server_no_context_takeover) out += "; server_no_context_takeover";
    if (p.client_no_context_takeover) out += "; client_no_context_takeover";
    if (p.server_max_window_bits) out += "; server_max_window_bits=" + std::to_string(*p.server_max_window_bits);
    if (p.client_max_window_bits) out += "; client_max_window_bits=" + std::to_string(*p.client_max_window_bits);
    return out;
}

http::headers with_extensions(std::string value) {
    http::headers h;
    h.add("Sec-WebSocket-Extensions", std::move(value));
    return h;
}

void check_server(std::string_view offers_text, const options& ours) {
    const auto request = with_extensions(std::string(offers_text));
    const auto elements = request.tokens("Sec-WebSocket-Extensions");
    std::optional<parameters> first_valid;
    for (const auto element : elements) {
        if (!http::detail::iequals(detail::extension_name_of(element), extension_name)) continue;
        if (auto parsed = parse_parameters(element, element_kind::offer)) {
            first_valid = *parsed.parameters;
            break;
        } else {
            FUZZ_CHECK(!parsed.error.empty());
        }
    }
    const auto agreement = select_offer(request, ours);
    FUZZ_CHECK(agreement.has_value() == first_valid.has_value());
    if (!agreement) return;
    const auto& offer = *first_valid;
    const auto& n = agreement->parameters;
    FUZZ_CHECK(valid(n));
    // Every request of the offer and every limit of ours is honoured.
    FUZZ_CHECK(n.server_max_window_bits <= ours.server_max_window_bits);
    if (offer.server_max_window_bits) FUZZ_CHECK(n.server_max_window_bits <= *offer.server_max_window_bits);
    if (offer.server_no_context_takeover || ours.disable_server_context_takeover) FUZZ_CHECK(n.server_no_context_takeover);
    if (ours.disable_client_context_takeover) FUZZ_CHECK(n.client_no_context_takeover);
    if (!offer.client_max_window_bits) FUZZ_CHECK(n.client_max_window_bits == max_window_bits);

    const auto response = parse_parameters(agreement->response, element_kind::response);
    FUZZ_CHECK(static_cast<bool>(response));
    // §7.1.2.2: no client_max_window_bits in a response to an offer without it.
    if (!offer.client_max_window_bits) FUZZ_CHECK(!response.parameters->client_max_window_bits);

    // The client that sent this offer accepts the response, with the same parameters.
    options client;
    client.disable_server_context_takeover = offer.server_no_context_takeover;
    client.disable_client_context_takeover = offer.client_no_context_takeover;
    client.server_max_window_bits = offer.server_max_window_bits.value_or(max_window_bits);
    if (offer.client_max_window_bits && *offer.client_max_window_bits != parameters::no_value)
        client.client_max_window_bits = *offer.client_max_window_bits;
    const auto check = validate_response(with_extensions(agreement->response), client);
    FUZZ_CHECK(static_cast<bool>(check));
    FUZZ_CHECK(check.parameters.has_value());
    FUZZ_CHECK(*check.parameters == n);
}

void check_client(std::string_view answer_text, const options& ours) {
    const auto check = validate_response(with_extensions(std::string(answer_text)), ours);
    if (!check) {
        FUZZ_CHECK(!check.parameters);
        return;
    }
    if (!check.parameters) return;  // declined: no element at all
    const auto& n = *check.parameters;
    FUZZ_CHECK(valid(n));
    // Every promise the offer asked for holds.
    FUZZ_CHECK(n.server_max_window_bits <= ours.server_max_window_bits);
    FUZZ_CHECK(n.client_max_window_bits <= ours.client_max_window_bits);
    if (ours.disable_server_context_takeover) FUZZ_CHECK(n.server_no_context_takeover);
    if (ours.disable_client_context_takeover) FUZZ_CHECK(n.client_no_context_takeover);

    // The accepted answer, written canonically, validates to the same parameters.
    const auto response = with_extensions(std::string(answer_text));
    const auto elements = response.tokens("Sec-WebSocket-Extensions");
    FUZZ_CHECK(elements.size() == 1);
    const auto parsed = parse_parameters(elements.front(), element_kind::response);
    FUZZ_CHECK(static_cast<bool>(parsed));
    const auto again = validate_response(with_extensions(canonical_response(*parsed.parameters)), ours);
    FUZZ_CHECK(static_cast<bool>(again) && again.parameters && *again.parameters == n);
}

// make_offer's offer is valid, and any server's answer to it validates on our side.
void check_offer_round_trip(const options& ours, const options& server) {
    const auto offer_text = make_offer(ours);
    const auto agreement = select_offer(with_extensions(offer_text), server);
    FUZZ_CHECK(agreement.has_value());
    const auto check = validate_response(with_extensions(agreement->response), ours);
    FUZZ_CHECK(static_cast<bool>(check) && check.parameters && *check.parameters == agreement->parameters);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto server = options_from(in.byte());
    const auto client = options_from(in.byte());
    const auto offers = fuzz::as_text(in.bytes(in.u16()));
    const auto answer = fuzz::as_text(in.rest());
    check_server(offers, server);
    check_client(answer, client);
    check_offer_round_trip(client, server);
    return 0;
}
