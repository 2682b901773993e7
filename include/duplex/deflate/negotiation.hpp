// permessage-deflate negotiation (RFC 7692 §5, §7.1) as pure functions: parse Sec-WebSocket-Extensions
// elements, choose the server's answer among a client's offers, and check that answer on the client.
//
// Policy, strict where the RFC says MUST and lenient where it leaves room:
// - The server declines (skips) an offer with an unknown or repeated parameter, or a value the RFC does
//   not allow (§5.1); the first offer that is not declined wins, since a client lists offers in order of
//   preference. Every valid offer is acceptable: window sizes 8–15 all work (see permessage.hpp for 8).
// - The client fails the handshake on any response it did not allow (§5.2): an unknown, repeated or
//   badly valued parameter, a window larger than it asked for, a request it made that the answer
//   ignores, client_max_window_bits without a value, an extension other than permessage-deflate, or
//   permessage-deflate twice.
// - Parameter values may be a token or a quoted-string whose unescaped content is a token (RFC 6455
//   §9.1), so server_max_window_bits="10" is 10. Window sizes are decimal without leading zeros (§7.1.2).
// - The extension and parameter names are compared without regard to case, as HTTP tokens usually are.
#pragma once

#include <duplex/http/parser.hpp>
#include <duplex/http/request.hpp>

#include <algorithm>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::deflate {

inline constexpr std::string_view extension_name = "permessage-deflate";
inline constexpr int min_window_bits = 8;
inline constexpr int max_window_bits = 15;

// What both ends agreed, from either end's point of view. Each direction has its own window (base-2
// logarithm of the LZ77 sliding window the sender may refer back into) and its own context takeover
// (whether a message may refer back into the messages before it). The values are the effective ones:
// a client's promise in its offer (e.g. client_max_window_bits=10 as a hint) is already applied.
struct negotiated {
    int server_max_window_bits = max_window_bits;
    int client_max_window_bits = max_window_bits;
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;

    friend bool operator==(const negotiated&, const negotiated&) = default;
};

// What one end wants. Each field speaks about one side of the connection, in both roles:
// - Server: `server_*` bind our own compressor (always honoured: a client's smaller request wins, and
//   every request of a client is honoured); `client_*` are asked of the client: client_no_context_takeover
//   always takes effect, client_max_window_bits only when the client's offer lets the server limit it
//   (otherwise the client keeps up to 15 rather than compression being refused).
// - Client: `client_*` bind our own compressor; `server_*` are asked of the server, which must honour
//   them or decline compression (a response that ignores them fails the handshake).
// The context-takeover switches trade compression ratio for memory: without takeover the LZ77 state of
// that direction is needed only while a message is in flight (see permessage.hpp). Whether to offer or
// accept compression at all is the application's `dangerous_enable_compression`: compressing secrets
// next to attacker-chosen data leaks them (CRIME/BREACH, see permessage.hpp).
struct options {
    int server_max_window_bits = max_window_bits;
    int client_max_window_bits = max_window_bits;
    bool disable_server_context_takeover = false;
    bool disable_client_context_takeover = false;
};

// The permessage-deflate parameters one element of Sec-WebSocket-Extensions carries, before any choice.
struct parameters {
    static constexpr int no_value = 0;

    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<int> server_max_window_bits;
    std::optional<int> client_max_window_bits;  // no_value when present without a value (offers only)
};

// Offers come from a client, responses from a server; they differ in whether client_max_window_bits
// may come without a value (§7.1.2.2).
enum class element_kind { offer, response };

struct parse_result {
    std::optional<deflate::parameters> parameters;  // empty when the element breaks a rule of §7.1
    std::string error;                              // why, for a log or a failed handshake
    explicit operator bool() const noexcept { return parameters.has_value(); }
};

namespace detail {

using http::detail::iequals;
using http::detail::is_optional_whitespace;

inline void check_window_bits(int bits, const char* what) {
    if (bits < min_window_bits || bits > max_window_bits)
        throw std::invalid_argument(std::string(what) + " must be between 8 and 15");
}

inline void check(const options& o) {
    check_window_bits(o.server_max_window_bits, "server_max_window_bits");
    check_window_bits(o.client_max_window_bits, "client_max_window_bits");
}

// Reads one extension element: token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] ).
class element_reader {
public:
    explicit element_reader(std::string_view element) noexcept : text_(element) {}

    std::string_view token() noexcept {
        const auto start = at_;
        while (at_ < text_.size() && http::detail::in(http::detail::token_chars, text_[at_])) ++at_;
        return text_.substr(start, at_ - start);
    }

    void skip_whitespace() noexcept {
        while (at_ < text_.size() && is_optional_whitespace(text_[at_])) ++at_;
    }

    bool at_end() const noexcept { return at_ == text_.size(); }
    bool take(char c) noexcept {
        if (at_ == text_.size() || text_[at_] != c) return false;
        ++at_;
        return true;
    }

    // A quoted-string (RFC 9110 §5.6.4) after its opening quote, unescaped into `out`.
    bool quoted_rest(std::string& out) {
        while (at_ < text_.size()) {
            const char c = text_[at_++];
            if (c == '"') return true;
            if (c == '\\') {
                if (at_ == text_.size()) return false;
                const char escaped = text_[at_++];
                if (!http::detail::in(http::detail::field_value_chars, escaped)) return false;
                out.push_back(escaped);
            } else if (http::detail::in(http::detail::field_value_chars, c)) {
                out.push_back(c);
            } else {
                return false;
            }
        }
        return false;
    }

private:
    std::string_view text_;
    std::size_t at_ = 0;
};

// A window size as §7.1.2 writes it: decimal, no leading zeros, 8–15.
inline std::optional<int> parse_window_bits(std::string_view value) noexcept {
    if (value.size() == 1 && value[0] >= '8' && value[0] <= '9') return value[0] - '0';
    if (value.size() == 2 && value[0] == '1' && value[1] >= '0' && value[1] <= '5') return 10 + (value[1] - '0');
    return std::nullopt;
}

inline std::string_view extension_name_of(std::string_view element) noexcept {
    element_reader reader(element);
    return reader.token();
}

inline void append_window_bits(std::string& out, std::string_view name, int bits) {
    out.append("; ").append(name).append("=").append(std::to_string(bits));
}

}  // namespace detail

// Parses one element of Sec-WebSocket-Extensions whose name is permessage-deflate (as split by
// http::headers::tokens, which keeps quoted commas inside their element).
inline parse_result parse_parameters(std::string_view element, element_kind kind) {
    const auto fail = [](std::string error) { return parse_result{std::nullopt, std::move(error)}; };
    detail::element_reader reader(element);
    const auto name = reader.token();
    if (!detail::iequals(name, extension_name)) return fail("not a permessage-deflate element");
    parameters p;
    for (;;) {
        reader.skip_whitespace();
        if (reader.at_end()) return parse_result{p, {}};
        if (!reader.take(';')) return fail("malformed permessage-deflate parameter list");
        reader.skip_whitespace();
        const auto parameter = reader.token();
        if (parameter.empty()) return fail("malformed permessage-deflate parameter list");
        reader.skip_whitespace();
        std::optional<std::string> value;
        if (reader.take('=')) {
            reader.skip_whitespace();
            if (reader.take('"')) {
                value.emplace();
                if (!reader.quoted_rest(*value))
                    return fail("unterminated quoted value of '" + std::string(parameter) + "'");
                // RFC 6455 §9.1: the unescaped content of a quoted value must still be a token.
                if (!http::detail::is_token(*value))
                    return fail("quoted value of '" + std::string(parameter) + "' is not a token");
            } else {
                value.emplace(reader.token());
                if (value->empty()) return fail("missing value of '" + std::string(parameter) + "'");
            }
        }
        const auto invalid = [&] {
            return fail(value ? "invalid value " + *value + " of '" + std::string(parameter) + "'"
                              : "'" + std::string(parameter) + "' needs a value");
        };
        const auto duplicate = [&] { return fail("duplicate parameter '" + std::string(parameter) + "'"); };
        if (detail::iequals(parameter, "server_no_context_takeover")) {
            if (p.server_no_context_takeover) return duplicate();
            if (value) return invalid();
            p.server_no_context_takeover = true;
        } else if (detail::iequals(parameter, "client_no_context_takeover")) {
            if (p.client_no_context_takeover) return duplicate();
            if (value) return invalid();
            p.client_no_context_takeover = true;
        } else if (detail::iequals(parameter, "server_max_window_bits")) {
            if (p.server_max_window_bits) return duplicate();
            const auto bits = value ? detail::parse_window_bits(*value) : std::nullopt;
            if (!bits) return invalid();
            p.server_max_window_bits = bits;
        } else if (detail::iequals(parameter, "client_max_window_bits")) {
            if (p.client_max_window_bits) return duplicate();
            if (!value && kind == element_kind::offer) {
                p.client_max_window_bits = parameters::no_value;
            } else {
                const auto bits = value ? detail::parse_window_bits(*value) : std::nullopt;
                if (!bits) return invalid();
                p.client_max_window_bits = bits;
            }
        } else {
            return fail("unknown parameter '" + std::string(parameter) + "'");
        }
    }
}

// ---- server ----

struct agreement {
    negotiated parameters;
    std::string response;  // the Sec-WebSocket-Extensions value that accepts the chosen offer
};

// The server's answer to one valid offer (§7.1): every request of the client is honoured, and our own
// wishes are added where the RFC lets a server add them.
inline agreement accept_offer(const parameters& offer, const options& ours) {
    detail::check(ours);
    negotiated n;
    n.server_no_context_takeover = offer.server_no_context_takeover || ours.disable_server_context_takeover;
    // Echoing the client's hint (§7.1.1.2) tells both ends the inflater may forget between messages.
    n.client_no_context_takeover = offer.client_no_context_takeover || ours.disable_client_context_takeover;
    n.server_max_window_bits =
        std::min(offer.server_max_window_bits.value_or(max_window_bits), ours.server_max_window_bits);
    if (offer.client_max_window_bits) {
        const int hint = *offer.client_max_window_bits == parameters::no_value ? max_window_bits
                                                                               : *offer.client_max_window_bits;
        n.client_max_window_bits = std::min(hint, ours.client_max_window_bits);
    }

    std::string response(extension_name);
    if (n.server_no_context_takeover) response.append("; server_no_context_takeover");
    if (n.client_no_context_takeover) response.append("; client_no_context_takeover");
    // An offer with server_max_window_bits is accepted only by answering it (§7.1.2.1).
    if (offer.server_max_window_bits || n.server_max_window_bits < max_window_bits)
        detail::append_window_bits(response, "server_max_window_bits", n.server_max_window_bits);
    // Without the parameter in the offer the response must not carry it (§7.1.2.2).
    if (offer.client_max_window_bits && n.client_max_window_bits < max_window_bits)
        detail::append_window_bits(response, "client_max_window_bits", n.client_max_window_bits);
    return {n, std::move(response)};
}

// Chooses among the elements of a request's Sec-WebSocket-Extensions: other extensions are ignored,
// invalid permessage-deflate offers declined, and the first valid one accepted. Empty when none is.
inline std::optional<agreement> select_offer(std::span<const std::string_view> elements, const options& ours) {
    detail::check(ours);
    for (const auto element : elements) {
        if (!detail::iequals(detail::extension_name_of(element), extension_name)) continue;
        if (auto parsed = parse_parameters(element, element_kind::offer)) return accept_offer(*parsed.parameters, ours);
    }
    return std::nullopt;
}

inline std::optional<agreement> select_offer(const http::headers& request_headers, const options& ours) {
    const auto elements = request_headers.tokens("Sec-WebSocket-Extensions");
    return select_offer(std::span<const std::string_view>(elements), ours);
}

// ---- client ----

// The client's single offer. client_max_window_bits is always present so that a server may shrink our
// window (saving its memory); with a value below 15 it is also our promise (§7.1.2.2).
inline std::string make_offer(const options& ours) {
    detail::check(ours);
    std::string offer(extension_name);
    if (ours.disable_server_context_takeover) offer.append("; server_no_context_takeover");
    if (ours.disable_client_context_takeover) offer.append("; client_no_context_takeover");
    if (ours.server_max_window_bits < max_window_bits)
        detail::append_window_bits(offer, "server_max_window_bits", ours.server_max_window_bits);
    if (ours.client_max_window_bits < max_window_bits)
        detail::append_window_bits(offer, "client_max_window_bits", ours.client_max_window_bits);
    else
        offer.append("; client_max_window_bits");
    return offer;
}

struct response_check {
    std::string error;                       // empty when the response is acceptable
    std::optional<negotiated> parameters;    // empty when the server declined compression
    explicit operator bool() const noexcept { return error.empty(); }
};

// The client's checks (§5.2, §7.1) of the server's Sec-WebSocket-Extensions elements, given the offer
// make_offer(ours) produced. A failed check must fail the WebSocket connection.
inline response_check validate_response(std::span<const std::string_view> elements, const options& ours) {
    detail::check(ours);
    const auto fail = [](std::string error) { return response_check{std::move(error), std::nullopt}; };
    if (elements.empty()) return {};
    for (const auto element : elements) {
        const auto name = detail::extension_name_of(element);
        if (!detail::iequals(name, extension_name))
            return fail("server accepted an extension that was not offered: " + std::string(name));
    }
    if (elements.size() > 1) return fail("server accepted permessage-deflate more than once");
    const auto parsed = parse_parameters(elements.front(), element_kind::response);
    if (!parsed) return fail("invalid permessage-deflate response: " + parsed.error);
    const auto& answer = *parsed.parameters;

    if (ours.disable_server_context_takeover && !answer.server_no_context_takeover)
        return fail("server ignored the request for server_no_context_takeover");
    if (ours.server_max_window_bits < max_window_bits) {
        if (!answer.server_max_window_bits) return fail("server ignored the request for server_max_window_bits");
        if (*answer.server_max_window_bits > ours.server_max_window_bits)
            return fail("server_max_window_bits in the response is larger than requested");
    }
    negotiated n;
    n.server_no_context_takeover = answer.server_no_context_takeover;
    n.client_no_context_takeover = answer.client_no_context_takeover || ours.disable_client_context_takeover;
    n.server_max_window_bits = answer.server_max_window_bits.value_or(max_window_bits);
    // A larger value than our hint is allowed; we keep to the smaller window we promised (§7.1.2.2).
    n.client_max_window_bits =
        std::min(answer.client_max_window_bits.value_or(max_window_bits), ours.client_max_window_bits);
    return {{}, n};
}

inline response_check validate_response(const http::headers& response_headers, const options& ours) {
    const auto elements = response_headers.tokens("Sec-WebSocket-Extensions");
    return validate_response(std::span<const std::string_view>(elements), ours);
}

}  // namespace duplex::deflate
