// Why a TLS connection could not be set up, as std::error_code values. Failures OpenSSL reports itself
// (no shared protocol version or cipher, an alert from the peer) keep Asio's SSL error codes, whose
// messages are OpenSSL's reason strings; these are the ones duplex decides or names more clearly.
#pragma once

#include <string>
#include <system_error>

namespace duplex::tls {

enum class errc {
    handshake_timeout = 1,  // the peer did not complete the TLS handshake in time
    plain_http_request,     // plain HTTP arrived on a TLS port (it was answered with 400 and closed)
    not_tls,                // the peer's first bytes were not a TLS handshake
    certificate_untrusted,  // the peer's certificate does not lead to a trusted certificate authority
    host_name_mismatch,     // the peer's certificate is not valid for the host name we asked for
    certificate_rejected,   // the peer's certificate failed verification otherwise (expired, bad signature…)
};

namespace detail {
class category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.tls"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::handshake_timeout: return "the peer did not complete the TLS handshake in time";
        case errc::plain_http_request: return "a plain HTTP request arrived on a TLS port";
        case errc::not_tls: return "the peer did not start a TLS handshake";
        case errc::certificate_untrusted:
            return "the peer's certificate is not issued by a trusted certificate authority";
        case errc::host_name_mismatch: return "the peer's certificate is not valid for the requested host name";
        case errc::certificate_rejected: return "the peer's certificate failed verification";
        }
        return "unknown TLS error";
    }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
    static const detail::category_impl category;
    return category;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace duplex::tls

template <>
struct std::is_error_code_enum<duplex::tls::errc> : std::true_type {};
