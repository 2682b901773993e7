// duplex::tls::stream<Next> — TLS over any Asio stream (normally a tcp::socket), the layer between TCP
// and the WebSocket: asio::ssl::stream plus what a server and a client need around it — a bounded
// handshake, plain HTTP on the TLS port answered instead of failing obscurely, SNI and host name
// checking, clear certificate errors, and close_notify when the WebSocket layer ends the connection.
//
//   auto context = duplex::tls::server_context({.certificate_file = "server.pem", .private_key_file = "server.key"});
//   duplex::tls::stream<tcp::socket> tls(std::move(socket), context);
//   const auto ec = co_await tls.accept(std::chrono::seconds(10));
//   if (ec) co_return;                                   // the transport is already closed
//   duplex::ws::stream<duplex::tls::stream<tcp::socket>> ws(std::move(tls), duplex::ws::role::server);
#pragma once

#include <duplex/config.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/tls/error.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace duplex::tls {

namespace detail {

// The first byte of every TLS handshake record (RFC 8446 §5.1, content type 22).
inline constexpr unsigned char handshake_record = 0x16;

// An HTTP/1.x request line starts with an upper-case method and a space ("GET ", "OPTIONS ", "PRI ").
inline bool looks_like_http(const unsigned char* bytes, std::size_t size) {
    std::size_t i = 0;
    while (i < size && i < 8 && bytes[i] >= 'A' && bytes[i] <= 'Z') ++i;
    return i >= 3 && i < size && bytes[i] == ' ';
}

inline errc classify_verify_result(long result) {
    switch (result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return errc::host_name_mismatch;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED: return errc::certificate_untrusted;
    default: return errc::certificate_rejected;
    }
}

}  // namespace detail

// A TLS connection over `Next`, itself an Asio stream, so that the WebSocket layer (or an HTTP server)
// stacks on it like on a socket. Movable, not copyable; all operations run on the transport's executor.
template <class Next>
class stream {
public:
    using next_layer_type = Next;
    using lowest_layer_type = typename asio::ssl::stream<Next>::lowest_layer_type;
    using executor_type = typename asio::ssl::stream<Next>::executor_type;

    // `next` is connected already (an accepted or a connected socket); the stream keeps `context` alive.
    stream(Next next, shared_context context) : context_(checked(std::move(context))), ssl_(std::move(next), *context_) {}

    executor_type get_executor() noexcept { return ssl_.get_executor(); }
    Next& next_layer() noexcept { return ssl_.next_layer(); }
    lowest_layer_type& lowest_layer() noexcept { return ssl_.lowest_layer(); }
    const lowest_layer_type& lowest_layer() const noexcept { return ssl_.lowest_layer(); }
    asio::ssl::stream<Next>& ssl_stream() noexcept { return ssl_; }
    SSL* native_handle() noexcept { return ssl_.native_handle(); }
    const shared_context& context() const noexcept { return context_; }

    // Server: the TLS handshake of an accepted connection, bounded by `timeout`. A plain HTTP request is
    // answered with 400 (errc::plain_http_request) and other bytes that do not start a TLS handshake end
    // the connection (errc::not_tls). Returns what went wrong, and the transport is closed then; nothing
    // the peer does makes it throw.
    awaitable<std::error_code> accept(std::chrono::steady_clock::duration timeout) {
        using namespace asio::experimental::awaitable_operators;
        auto outcome = co_await (accept_or_answer_plain_http() || close_after(timeout));
        co_return finish_handshake(outcome);
    }

    // Client: the TLS handshake, bounded by `timeout`. `server_name` goes out as SNI (unless it is an IP
    // address) and, when the context verifies peers and `verify_host_name` holds, the server's
    // certificate must be valid for it. Returns what went wrong — errc::certificate_untrusted,
    // host_name_mismatch or certificate_rejected when the certificate was refused (verify_error() says
    // why in OpenSSL's words), errc::handshake_timeout, or Asio's SSL error — and the transport is
    // closed then.
    awaitable<std::error_code> handshake(std::string_view server_name, std::chrono::steady_clock::duration timeout,
                                         bool verify_host_name = true) {
        using namespace asio::experimental::awaitable_operators;
        if (const auto ec = set_server_name(server_name, verify_host_name)) {
            close_transport();
            co_return ec;
        }
        auto outcome = co_await (client_handshake() || close_after(timeout));
        co_return finish_handshake(outcome);
    }

    // After a refused certificate, OpenSSL's reason (e.g. "certificate has expired"); empty otherwise.
    std::string verify_error() const {
        const auto result = SSL_get_verify_result(ssl());
        return result == X509_V_OK ? std::string() : std::string(X509_verify_cert_error_string(result));
    }

    // The protocol ALPN settled on ("http/1.1"), or empty when none was.
    std::string_view alpn_protocol() const noexcept {
        const unsigned char* name = nullptr;
        unsigned int length = 0;
        SSL_get0_alpn_selected(ssl(), &name, &length);
        return {reinterpret_cast<const char*>(name), name ? length : 0};
    }

    // The Asio stream concept.
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return ssl_.async_read_some(buffers, std::forward<Token>(token));
    }
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return ssl_.async_write_some(buffers, std::forward<Token>(token));
    }

    // TLS's half-close: sends close_notify and completes once it is written, while reading goes on
    // until the peer's close_notify (or the end of the connection) — what the WebSocket layer's lingering
    // close needs (duplex::detail::async_shutdown_send). Asio's async_shutdown alone would go on to read
    // inside SSL_shutdown, which fails on application data the peer still has in flight, so for that one
    // call the peer's close_notify is marked as seen, and unmarked after. Errors are not reported: they
    // only mean the peer has gone.
    awaitable<void> async_shutdown_send() {
        SSL* tls = native_handle();
        const int state = SSL_get_shutdown(tls);
        if ((state & SSL_SENT_SHUTDOWN) != 0 || SSL_is_init_finished(tls) != 1) co_return;
        SSL_set_shutdown(tls, state | SSL_RECEIVED_SHUTDOWN);
        co_await ssl_.async_shutdown(duplex::detail::use_nothrow_awaitable);
        SSL_set_shutdown(tls, SSL_SENT_SHUTDOWN | (state & SSL_RECEIVED_SHUTDOWN));
    }

private:
    static shared_context checked(shared_context context) {
        if (!context) throw std::invalid_argument("duplex::tls::stream needs a TLS context");
        return context;
    }

    SSL* ssl() const noexcept { return const_cast<asio::ssl::stream<Next>&>(ssl_).native_handle(); }

    void close_transport() noexcept {
        std::error_code ignored;
        lowest_layer().close(ignored);
    }

    // Closes the transport when `timeout` passes first; the handshake in flight then fails at once.
    awaitable<void> close_after(std::chrono::steady_clock::duration timeout) {
        asio::steady_timer timer(get_executor(), timeout);
        const auto [ec] = co_await timer.async_wait(duplex::detail::use_nothrow_awaitable);
        if (!ec) close_transport();
    }

    std::error_code finish_handshake(const std::variant<std::error_code, std::monostate>& outcome) {
        std::error_code ec = errc::handshake_timeout;
        if (outcome.index() == 0) ec = std::get<0>(outcome);
        if (ec) close_transport();
        return ec;
    }

    std::error_code set_server_name(std::string_view server_name, bool verify_host_name) {
        if (server_name.empty()) return {};
        const std::string name(server_name);
        std::error_code not_an_address;
        (void)asio::ip::make_address(name, not_an_address);
        int ok = 1;
        if (not_an_address) {
            ok = static_cast<int>(SSL_set_tlsext_host_name(ssl(), name.c_str()));  // RFC 6066 §3: DNS names only
            if (ok == 1 && verify_host_name) {
                SSL_set_hostflags(ssl(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(ssl(), name.c_str());
            }
        } else if (verify_host_name) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl()), name.c_str());
        }
        if (ok == 1) return {};
        const auto code = ERR_get_error();
        ERR_clear_error();
        return std::error_code(static_cast<int>(code), asio::error::get_ssl_category());
    }

    awaitable<std::error_code> client_handshake() {
        const auto [ec] = co_await ssl_.async_handshake(asio::ssl::stream_base::client,
                                                        duplex::detail::use_nothrow_awaitable);
        if (ec && SSL_get_verify_result(ssl()) != X509_V_OK)
            co_return make_error_code(detail::classify_verify_result(SSL_get_verify_result(ssl())));
        co_return ec;
    }

    // Looks at the first bytes before TLS does: a TLS handshake goes on with them, plain HTTP gets an
    // answer it can show, anything else is dropped.
    awaitable<std::error_code> accept_or_answer_plain_http() {
        std::array<unsigned char, 512> first;
        const auto [read_ec, n] = co_await next_layer().async_read_some(asio::buffer(first),
                                                                        duplex::detail::use_nothrow_awaitable);
        if (read_ec) co_return read_ec;
        if (n == 0) co_return asio::error::eof;
        if (first[0] == detail::handshake_record) {
            const auto [ec, used] = co_await ssl_.async_handshake(
                asio::ssl::stream_base::server, asio::buffer(first.data(), n), duplex::detail::use_nothrow_awaitable);
            co_return ec;
        }
        if (!detail::looks_like_http(first.data(), n)) co_return errc::not_tls;
        co_await answer_plain_http();
        co_return errc::plain_http_request;
    }

    // 400, then a half-close and a bounded read of what the client still sends, so that closing does not
    // reset the connection and destroy the answer in flight.
    awaitable<void> answer_plain_http() {
        static constexpr std::string_view answer =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 60\r\n"
            "Connection: close\r\n\r\nThis port speaks HTTPS: the request was sent as plain HTTP.\n";
        const auto [write_ec, written] =
            co_await asio::async_write(next_layer(), asio::buffer(answer), duplex::detail::use_nothrow_awaitable);
        if (write_ec) co_return;
        std::error_code ignored;
        lowest_layer().shutdown(lowest_layer_type::shutdown_send, ignored);
        std::array<unsigned char, 512> discard;
        std::size_t discarded = 0;
        std::error_code ec;
        while (!ec && discarded < 64 * 1024) {
            const auto [read_ec, n] = co_await next_layer().async_read_some(asio::buffer(discard),
                                                                            duplex::detail::use_nothrow_awaitable);
            ec = read_ec;
            discarded += n;
        }
    }

    shared_context context_;
    asio::ssl::stream<Next> ssl_;
};

}  // namespace duplex::tls
