// ASP.NET Core's HttpsConnectionAdapterOptions (Kestrel's ListenOptions.UseHttps): the certificate the app
// serves its https:// URLs with, and how long a client gets to complete the TLS handshake.
//
//   app.use_https({.certificate_chain_file = "server.pem", .private_key_file = "server.key"});
//   app.run("http://localhost:5000;https://localhost:5001");
#pragma once

#include <duplex/app/http_protocols.hpp>
#include <duplex/tls/context.hpp>

#include <chrono>
#include <string>

namespace duplex {

struct https_options {
    // PEM: the server's certificate, followed by the intermediate certificates of its chain (not the root).
    std::string certificate_chain_file{};
    // PEM, unencrypted (an encrypted key is refused rather than prompting for a pass phrase).
    std::string private_key_file{};
    // A ready server context (duplex::tls::server_context, or one configured by hand) instead of the two
    // files: to add a chain file, other ALPN protocols or OpenSSL settings of your own.
    tls::shared_context context{};
    // A connection that has not completed its TLS handshake within this is closed (Kestrel's
    // HandshakeTimeout): a client that connects and says nothing holds a connection only this long.
    std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
    // The HTTP versions offered through ALPN (Kestrel's ListenOptions.Protocols): h2 and http/1.1 by
    // default, the client choosing. With http2 alone, a client that does not pick h2 is disconnected
    // after the handshake. A ready `context` offers what it was made with instead.
    http_protocols protocols = http_protocols::http1_and_http2;
};

}  // namespace duplex
