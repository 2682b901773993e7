// duplex — the RFC 6455 opening handshake as pure functions: keys, checks and the heads both sides send.
#pragma once

#include <duplex/http/parser.hpp>
#include <duplex/http/request.hpp>
#include <duplex/http/response.hpp>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::ws::handshake {

inline constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
inline constexpr std::string_view supported_version = "13";

namespace detail {

template <std::size_t N>
std::string base64(const std::array<unsigned char, N>& bytes) {
    std::array<unsigned char, (N + 2) / 3 * 4 + 1> text{};  // EVP_EncodeBlock adds a NUL
    const int length = EVP_EncodeBlock(text.data(), bytes.data(), static_cast<int>(N));
    return std::string(reinterpret_cast<const char*>(text.data()), static_cast<std::size_t>(length));
}

}  // namespace detail

// A fresh Sec-WebSocket-Key: 16 random bytes from OpenSSL's CSPRNG, base64 (24 characters).
inline std::string generate_key() {
    std::array<unsigned char, 16> nonce{};
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1)
        throw std::runtime_error("RAND_bytes failed to generate a Sec-WebSocket-Key");
    return detail::base64(nonce);
}

// Sec-WebSocket-Accept for a key: base64(SHA-1(key + guid)) (RFC 6455 §4.2.2).
//
// OpenSSL 3 looks the algorithm up by name and allocates a context on every EVP_Digest(EVP_sha1()):
// 3.7 % of the server's CPU per handshake (perf, benchmarks/run handshake). Fetched once, with one
// context per thread reused, a digest takes about 0.3 µs instead of 0.9 µs and one allocation instead of three.
inline std::string compute_accept(std::string_view key) {
    struct context_deleter {
        void operator()(EVP_MD_CTX* context) const noexcept { EVP_MD_CTX_free(context); }
    };
    static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    thread_local const std::unique_ptr<EVP_MD_CTX, context_deleter> context(EVP_MD_CTX_new());
    std::array<unsigned char, 20> digest{};
    unsigned int digest_length = 0;
    if (sha1 == nullptr || !context || EVP_DigestInit_ex2(context.get(), sha1, nullptr) != 1 ||
        EVP_DigestUpdate(context.get(), key.data(), key.size()) != 1 ||
        EVP_DigestUpdate(context.get(), guid.data(), guid.size()) != 1 ||
        EVP_DigestFinal_ex(context.get(), digest.data(), &digest_length) != 1 || digest_length != digest.size())
        throw std::runtime_error("OpenSSL failed to compute SHA-1 for Sec-WebSocket-Accept");
    return detail::base64(digest);
}

// True for base64 that decodes to exactly 16 bytes: 22 base64 characters and "==".
inline bool is_valid_key(std::string_view key) {
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // EVP_DecodeBlock skips surrounding whitespace and tolerates '=' anywhere, so the shape is checked here.
    if (key.size() != 24 || key.find_first_not_of(alphabet) != 22 || key.substr(22) != "==") return false;
    std::array<unsigned char, 18> decoded{};
    const int length = EVP_DecodeBlock(decoded.data(), reinterpret_cast<const unsigned char*>(key.data()),
                                       static_cast<int>(key.size()));
    return length - 2 == 16;  // EVP_DecodeBlock counts the two padding bytes as data
}

// What ASP.NET Core's IsWebSocketRequest answers for HTTP/1.1: a GET whose Upgrade lists "websocket" and
// whose Connection lists "upgrade". The remaining checks are validate_request's, so a request that
// looks like a WebSocket request but is malformed gets a clear error instead of falling through.
inline bool is_upgrade_request(const http::request& r) {
    return r.method == "GET" && r.headers.has_token("Upgrade", "websocket") &&
           r.headers.has_token("Connection", "upgrade");
}

// RFC 8441 §4: a WebSocket over HTTP/2 is an extended CONNECT with :protocol "websocket" (compared
// case-insensitively, as Kestrel does). The rest, as for an upgrade, is validate_extended_connect's.
inline bool is_extended_connect_request(const http::request& r) {
    return r.version_major == 2 && r.method == "CONNECT" && http::detail::iequals(r.protocol, "websocket");
}

// What ASP.NET Core's IsWebSocketRequest answers: an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT.
inline bool is_websocket_request(const http::request& r) { return is_upgrade_request(r) || is_extended_connect_request(r); }

// Sec-WebSocket-Protocol values offered by the client, in order. The views point into `r`.
inline std::vector<std::string_view> requested_protocols(const http::request& r) {
    return r.headers.tokens("Sec-WebSocket-Protocol");
}

struct request_check {
    int status = 0;  // 0 when the request is a valid opening handshake, else 400 or 426
    std::string message;
    explicit operator bool() const noexcept { return status == 0; }
};

// The server's checks of RFC 6455 §4.2.1. A wrong or repeated Sec-WebSocket-Version gets 426 (the
// answer then names the version we speak, §4.2.2); everything else, a missing Sec-WebSocket-Version
// included, is a malformed handshake and gets 400. The version is checked last, so 426 means the
// request was otherwise fine.
inline request_check validate_request(const http::request& r) {
    const auto bad = [](std::string message) { return request_check{400, std::move(message)}; };
    if (r.method != "GET") return bad("WebSocket handshake requires GET, got " + r.method);
    if (r.version_major < 1 || (r.version_major == 1 && r.version_minor < 1))
        return bad("WebSocket handshake requires HTTP/1.1 or newer");
    const auto hosts = r.headers.count("Host");
    if (hosts == 0) return bad("missing Host header");
    if (hosts > 1) return bad("more than one Host header");
    if (r.headers.get("Host")->empty()) return bad("empty Host header");
    if (!r.headers.has_token("Upgrade", "websocket")) return bad("Upgrade header must list \"websocket\"");
    if (!r.headers.has_token("Connection", "upgrade")) return bad("Connection header must list \"Upgrade\"");
    const auto keys = r.headers.count("Sec-WebSocket-Key");
    if (keys == 0) return bad("missing Sec-WebSocket-Key header");
    if (keys > 1) return bad("more than one Sec-WebSocket-Key header");
    if (!is_valid_key(*r.headers.get("Sec-WebSocket-Key")))
        return bad("Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    if (!r.headers.contains("Sec-WebSocket-Version"))
        return bad("missing Sec-WebSocket-Version header (this server speaks version 13)");
    if (r.headers.count("Sec-WebSocket-Version") != 1 || *r.headers.get("Sec-WebSocket-Version") != supported_version)
        return {426, "unsupported Sec-WebSocket-Version (this server speaks version 13)"};
    return {};
}

// The server's checks of an RFC 8441 extended CONNECT (nghttp2 has checked the pseudo-headers): one
// Sec-WebSocket-Version, 13, else 426 as over HTTP/1.1; a missing one is 400. There is no key (§5).
inline request_check validate_extended_connect(const http::request& r) {
    if (!is_extended_connect_request(r)) return {400, "a WebSocket over HTTP/2 is a CONNECT with :protocol websocket"};
    if (!r.headers.contains("Sec-WebSocket-Version"))
        return {400, "missing Sec-WebSocket-Version header (this server speaks version 13)"};
    if (r.headers.count("Sec-WebSocket-Version") != 1 || *r.headers.get("Sec-WebSocket-Version") != supported_version)
        return {426, "unsupported Sec-WebSocket-Version (this server speaks version 13)"};
    return {};
}

// The server's "101 Switching Protocols" head. `sub_protocol` (one of requested_protocols, or empty for
// none) must be a token; the extra fields are appended. Throws std::invalid_argument on invalid input.
inline std::string make_accept_response(std::string_view key, std::string_view sub_protocol,
                                        const http::headers& extra = {}) {
    if (!sub_protocol.empty() && !http::detail::is_token(sub_protocol))
        throw std::invalid_argument("a WebSocket subprotocol must be a token");
    std::string out;
    out.reserve(160);
    out.append("HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n");
    http::write_field(out, "Sec-WebSocket-Accept", compute_accept(key));
    if (!sub_protocol.empty()) http::write_field(out, "Sec-WebSocket-Protocol", sub_protocol);
    http::write_fields(out, extra);
    out.append("\r\n");
    return out;
}

// The answer to a failed validate_request: a plain-text body with the message, and the connection
// closed. A 426 also names the version we speak and, as RFC 9110 §15.5.22 requires, the protocol to
// upgrade to. Throws std::invalid_argument for a check that did not fail.
inline std::string make_error_response(const request_check& failure) {
    if (failure) throw std::invalid_argument("make_error_response needs a failed request_check");
    http::headers h;
    h.add("Content-Type", "text/plain; charset=utf-8");
    h.add("Content-Length", std::to_string(failure.message.size()));
    if (failure.status == 426) {
        h.add("Connection", "Upgrade, close");
        h.add("Upgrade", "websocket");
        h.add("Sec-WebSocket-Version", std::string(supported_version));
    } else {
        h.add("Connection", "close");
    }
    std::string out;
    http::write_response_head(out, failure.status, h);
    out.append(failure.message);
    return out;
}

// The client's opening handshake (RFC 6455 §4.1). `host` is the Host value (with the port when it is not
// the scheme's default), `target` the path and query, `key` one from generate_key, `protocols` the
// subprotocols offered in order of preference (tokens). Throws std::invalid_argument on invalid input.
inline std::string make_request(std::string_view host, std::string_view target, std::string_view key,
                                std::span<const std::string> protocols, const http::headers& extra = {}) {
    if (target.empty() ||
        !std::all_of(target.begin(), target.end(), [](char c) { return http::detail::in(http::detail::target_chars, c); }))
        throw std::invalid_argument("invalid WebSocket request target");
    if (host.empty()) throw std::invalid_argument("empty WebSocket Host");
    if (!is_valid_key(key)) throw std::invalid_argument("invalid Sec-WebSocket-Key");
    std::string out;
    out.reserve(192 + target.size());
    out.append("GET ").append(target).append(" HTTP/1.1\r\n");
    http::write_field(out, "Host", host);
    out.append("Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n");
    http::write_field(out, "Sec-WebSocket-Key", key);
    out.append("Sec-WebSocket-Version: 13\r\n");
    if (!protocols.empty()) {
        std::string offered;
        for (const auto& protocol : protocols) {
            if (!http::detail::is_token(protocol)) throw std::invalid_argument("a WebSocket subprotocol must be a token");
            if (!offered.empty()) offered.append(", ");
            offered.append(protocol);
        }
        http::write_field(out, "Sec-WebSocket-Protocol", offered);
    }
    http::write_fields(out, extra);
    out.append("\r\n");
    return out;
}

struct response_check {
    std::string error;         // empty when the server accepted the handshake
    std::string sub_protocol;  // the subprotocol the server selected, empty for none
    explicit operator bool() const noexcept { return error.empty(); }
};

// What the client's checks of both handshakes share (validate_response, validate_tunneled_response): the
// server selected at most one of the offered sub-protocols, and no extension that was not offered.
inline response_check validate_selection(const http::response& r, std::span<const std::string> offered_protocols,
                                         bool extensions_offered) {
    const auto fail = [](std::string error) { return response_check{std::move(error), {}}; };
    response_check result;
    const auto selected = r.headers.tokens("Sec-WebSocket-Protocol");
    if (selected.size() > 1) return fail("server selected more than one subprotocol");
    if (selected.size() == 1) {
        if (std::find(offered_protocols.begin(), offered_protocols.end(), selected.front()) == offered_protocols.end())
            return fail(offered_protocols.empty() ? "server selected a subprotocol although none was offered"
                                                  : "server selected a subprotocol that was not offered");
        result.sub_protocol = selected.front();
    }
    if (!extensions_offered && !r.headers.tokens("Sec-WebSocket-Extensions").empty())
        return fail("server selected an extension that was not offered");
    return result;
}

// The client's checks of RFC 6455 §4.1 on the server's answer to make_request(…, key, offered_protocols, …).
// With `extensions_offered` the Sec-WebSocket-Extensions answer is left to the offered extension's own
// check (deflate::validate_response); without it, any extension in the answer fails the handshake.
inline response_check validate_response(const http::response& r, std::string_view key,
                                        std::span<const std::string> offered_protocols,
                                        bool extensions_offered = false) {
    const auto fail = [](std::string error) { return response_check{std::move(error), {}}; };
    if (r.status_code != 101) {
        std::string error = "server answered " + std::to_string(r.status_code);
        if (!r.reason.empty()) error.append(" ").append(r.reason);
        return fail(error + " instead of 101 Switching Protocols");
    }
    if (!r.headers.has_token("Upgrade", "websocket")) return fail("Upgrade header must list \"websocket\"");
    if (!r.headers.has_token("Connection", "upgrade")) return fail("Connection header must list \"Upgrade\"");
    const auto accepts = r.headers.count("Sec-WebSocket-Accept");
    if (accepts == 0) return fail("missing Sec-WebSocket-Accept header");
    if (accepts > 1 || *r.headers.get("Sec-WebSocket-Accept") != compute_accept(key))
        return fail("Sec-WebSocket-Accept does not match the key sent");
    return validate_selection(r, offered_protocols, extensions_offered);
}

// The client's checks on the server's answer to an extended CONNECT over HTTP/2 (RFC 8441 §5): exactly
// 200 (as Chromium requires; any other status, 2xx included, refuses the WebSocket), then the same
// sub-protocol and extension checks as over HTTP/1.1. There is no key and no Sec-WebSocket-Accept.
inline response_check validate_tunneled_response(const http::response& r, std::span<const std::string> offered_protocols,
                                                 bool extensions_offered = false) {
    if (r.status_code != 200)
        return response_check{"server answered the extended CONNECT with " + std::to_string(r.status_code) +
                                  " instead of 200",
                              {}};
    return validate_selection(r, offered_protocols, extensions_offered);
}

}  // namespace duplex::ws::handshake
