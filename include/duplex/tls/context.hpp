// The TLS contexts a server and a client start from: certificates, what to trust, ALPN, and TLS 1.2 as
// the oldest version spoken. One context serves any number of connections; each duplex::tls::stream
// holds a reference to the context it was made with, so the context lives as long as its connections.
#pragma once

#include <asio/ssl.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace duplex::tls {

using shared_context = std::shared_ptr<asio::ssl::context>;

// What ALPN offers unless told otherwise. (A function rather than a braced default member initializer:
// g++ 12 rejects `{}` for an options argument of a coroutine when an initializer list sits inside.)
inline std::vector<std::string> default_alpn_protocols() { return {"http/1.1"}; }

struct server_options {
    // PEM: the server's certificate, optionally followed by the intermediate certificates of its chain.
    std::string certificate_file{};
    // PEM, unencrypted (an encrypted key is refused rather than prompting for a pass phrase).
    std::string private_key_file{};
    // PEM: intermediate certificates, when they are not in certificate_file.
    std::string chain_file{};
    // Offered through ALPN in our order of preference ("h2" goes first once HTTP/2 is served). A client
    // that offers none of them still connects, without an ALPN protocol.
    std::vector<std::string> alpn_protocols = default_alpn_protocols();
};

struct client_options {
    // PEM certificates of the certificate authorities to trust instead of the system store.
    std::string ca_file{};
    // false accepts any certificate: for tests against throwaway servers only.
    bool verify_peer = true;
    // Per connection: check that the server's certificate names the host (a DNS name or an IP address).
    bool verify_host_name = true;
    // Per connection: the name sent as SNI and checked against the certificate; empty means the host of
    // the URI connected to.
    std::string server_name{};
    // Offered through ALPN, in order of preference.
    std::vector<std::string> alpn_protocols = default_alpn_protocols();
    // A context to use instead of making one from ca_file, verify_peer and alpn_protocols (e.g. one
    // shared by many connections).
    shared_context context{};
};

namespace detail {

// The context and what OpenSSL's callbacks point into, kept together: a shared_context aliases the
// context inside, so the callbacks' data lives exactly as long as the context is shared.
struct context_holder {
    explicit context_holder(asio::ssl::context::method method) : context(method) {}
    asio::ssl::context context;
    std::string alpn_protocols;  // ALPN wire format: each name after its length byte
};

// The first error OpenSSL queued: an errno (a file that cannot be opened) as a generic error, anything
// else as Asio's SSL error, whose message is OpenSSL's reason.
inline std::system_error openssl_error(const std::string& what) {
    const auto code = ERR_get_error();
    ERR_clear_error();
    if (ERR_SYSTEM_ERROR(code))
        return std::system_error(std::error_code(static_cast<int>(ERR_GET_REASON(code)), std::generic_category()), what);
    return std::system_error(std::error_code(static_cast<int>(code), asio::error::get_ssl_category()), what);
}

inline std::string alpn_wire_format(const std::vector<std::string>& protocols) {
    std::string wire;
    for (const auto& protocol : protocols) {
        if (protocol.empty() || protocol.size() > 255)
            throw std::invalid_argument("an ALPN protocol name has 1 to 255 bytes: '" + protocol + "'");
        wire.push_back(static_cast<char>(protocol.size()));
        wire += protocol;
    }
    return wire;
}

inline int select_alpn_protocol(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                                unsigned int offered_length, void* ours) {
    const auto& supported = *static_cast<const std::string*>(ours);
    unsigned char* selected = nullptr;
    // Picks the first of our protocols that the client offers.
    if (SSL_select_next_proto(&selected, out_length, reinterpret_cast<const unsigned char*>(supported.data()),
                              static_cast<unsigned int>(supported.size()), offered,
                              offered_length) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

inline void speak_modern_tls_only(SSL_CTX* context) {
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) throw openssl_error("cannot require TLS 1.2");
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Never prompt on the terminal for a key's pass phrase.
    SSL_CTX_set_default_passwd_cb(context, [](char*, int, int, void*) { return 0; });
}

inline void load_chain_file(SSL_CTX* context, const std::string& path) {
    const std::unique_ptr<BIO, decltype(&BIO_free)> file(BIO_new_file(path.c_str(), "r"), &BIO_free);
    if (!file) throw openssl_error("cannot open the certificate chain file '" + path + "'");
    int loaded = 0;
    for (;;) {
        X509* certificate = PEM_read_bio_X509(file.get(), nullptr, nullptr, nullptr);
        if (!certificate) break;  // the end of the file (or a broken entry, caught below)
        if (SSL_CTX_add0_chain_cert(context, certificate) != 1) {
            X509_free(certificate);
            throw openssl_error("cannot use a certificate of the chain file '" + path + "'");
        }
        ++loaded;
    }
    const auto last = ERR_peek_last_error();
    if (loaded == 0 || ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
        throw openssl_error("cannot read the certificate chain file '" + path + "'");
    ERR_clear_error();
}

}  // namespace detail

// A server context from PEM files. Throws std::system_error naming the file and OpenSSL's reason when a
// file cannot be read or the key does not match the certificate.
inline shared_context server_context(const server_options& options) {
    if (options.certificate_file.empty() || options.private_key_file.empty())
        throw std::invalid_argument("a TLS server needs a certificate file and a private key file");
    auto holder = std::make_shared<detail::context_holder>(asio::ssl::context::tls_server);
    SSL_CTX* context = holder->context.native_handle();
    detail::speak_modern_tls_only(context);
    SSL_CTX_set_options(context, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(context, options.certificate_file.c_str()) != 1)
        throw detail::openssl_error("cannot load the certificate file '" + options.certificate_file + "'");
    if (!options.chain_file.empty()) detail::load_chain_file(context, options.chain_file);
    const auto key_mismatch = "the private key '" + options.private_key_file + "' does not belong to the certificate '" +
                              options.certificate_file + "'";
    if (SSL_CTX_use_PrivateKey_file(context, options.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) throw detail::openssl_error(key_mismatch);
        throw detail::openssl_error("cannot load the private key file '" + options.private_key_file + "'");
    }
    if (SSL_CTX_check_private_key(context) != 1) throw detail::openssl_error(key_mismatch);
    holder->alpn_protocols = detail::alpn_wire_format(options.alpn_protocols);
    if (!holder->alpn_protocols.empty())
        SSL_CTX_set_alpn_select_cb(context, &detail::select_alpn_protocol, &holder->alpn_protocols);
    return shared_context(holder, &holder->context);
}

// A client context that verifies servers against the system's trusted certificates, or only against
// options.ca_file when given (verify_peer = false turns verification off). Host name checking and SNI
// are per connection: see tls::stream::handshake. Throws std::system_error when the CA file cannot be
// loaded.
inline shared_context client_context(const client_options& options = {}) {
    auto holder = std::make_shared<detail::context_holder>(asio::ssl::context::tls_client);
    SSL_CTX* context = holder->context.native_handle();
    detail::speak_modern_tls_only(context);
    if (options.verify_peer) {
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
        if (options.ca_file.empty()) {
            if (SSL_CTX_set_default_verify_paths(context) != 1)
                throw detail::openssl_error("cannot load the system's trusted certificates");
        } else if (SSL_CTX_load_verify_locations(context, options.ca_file.c_str(), nullptr) != 1) {
            throw detail::openssl_error("cannot load the CA file '" + options.ca_file + "'");
        }
    } else {
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
    }
    holder->alpn_protocols = detail::alpn_wire_format(options.alpn_protocols);
    if (!holder->alpn_protocols.empty() &&
        SSL_CTX_set_alpn_protos(context, reinterpret_cast<const unsigned char*>(holder->alpn_protocols.data()),
                                static_cast<unsigned int>(holder->alpn_protocols.size())) != 0)
        throw detail::openssl_error("cannot set the ALPN protocols");
    return shared_context(holder, &holder->context);
}

}  // namespace duplex::tls
