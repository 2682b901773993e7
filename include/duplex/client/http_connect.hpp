// The HTTP CONNECT handshake with a proxy (RFC 9110 §9.3.6), sans-I/O: the request, with Basic
// authentication (RFC 7617) when the proxy URI has credentials, and the check of the proxy's answer.
// tunnel.hpp drives it over a socket; tests and the fuzzer drive it with bytes.
//
//   http_connect_handshake h(proxy, "example.com", 443);
//   write(h.take_output());                   // CONNECT example.com:443 HTTP/1.1 …
//   while (h.status() == need_more) h.feed(read());
//   if (h.status() == failed) … h.error(), h.detail()   // authentication_required, "refused CONNECT … (407 …)"
#pragma once

#include <duplex/client/proxy.hpp>
#include <duplex/client/proxy_error.hpp>
#include <duplex/http/parser.hpp>

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duplex::client {

namespace detail {

inline std::string base64(std::string_view bytes) {
    std::string text((bytes.size() + 2) / 3 * 4 + 1, '\0');  // EVP_EncodeBlock adds a NUL
    const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                       reinterpret_cast<const unsigned char*>(bytes.data()),
                                       static_cast<int>(bytes.size()));
    text.resize(static_cast<std::size_t>(length));
    return text;
}

}  // namespace detail

class http_connect_handshake final : public proxy_handshake {
public:
    // A tunnel to host:port through `proxy` (whose credentials, when it has them, go in
    // Proxy-Authorization). The answer's head is held to `limits`.
    http_connect_handshake(const proxy_uri& proxy, std::string_view host, std::uint16_t port,
                           http::parser_limits limits = {})
        : proxy_handshake(detail::bracketed_host(host) + ":" + std::to_string(port)), parser_(limits) {
        output_ = "CONNECT " + target() + " HTTP/1.1\r\nHost: " + target() + "\r\n";
        if (proxy.has_credentials())
            output_ += "Proxy-Authorization: Basic " + detail::base64(proxy.username + ":" + proxy.password) + "\r\n";
        output_ += "\r\n";
    }

    // The request at first, then nothing.
    std::string take_output() override { return std::exchange(output_, std::string()); }

    // Uses the answer's head, never more (nothing should follow: the server behind does not speak first).
    std::size_t feed(std::string_view bytes) override {
        if (status() != proxy_handshake_status::need_more) return 0;
        const auto used = parser_.feed(bytes);
        if (parser_.status() == http::parse_status::error) {
            fail(proxy_errc::malformed_reply,
                 "answered CONNECT to " + target() + " with no HTTP response (" + std::string(parser_.error_message()) + ")");
        } else if (parser_.status() == http::parse_status::done) {
            const auto& response = parser_.get();
            const std::string status_line = std::to_string(response.status_code) + " " + response.reason;
            if (response.status_code >= 200 && response.status_code <= 299)
                succeed();
            else
                fail(response.status_code == 407 ? proxy_errc::authentication_required : proxy_errc::connect_refused,
                     "refused CONNECT to " + target() + " (" + status_line + ")");
        }
        return used;
    }

    // The proxy's answer (its status code is the one to look at), once its head is complete.
    const http::response& response() const noexcept { return parser_.get(); }

private:
    http::response_parser parser_;
    std::string output_;
};

}  // namespace duplex::client
