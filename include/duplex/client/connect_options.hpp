// duplex::connect_options — what a client connection offers and how it gets there: sub-protocols,
// headers, limits, TLS and permessage-deflate.
#pragma once

#include <duplex/deflate/negotiation.hpp>
#include <duplex/http/request.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/websocket/options.hpp>

#include <optional>
#include <string>
#include <vector>

namespace duplex {

struct connect_options {
    // Offered in Sec-WebSocket-Protocol, in order of preference; the server picks one or none.
    std::vector<std::string> sub_protocols{};
    // Extra request headers (e.g. Origin, Authorization).
    http::headers headers{};
    ws::stream_options stream{};
    // wss:// only: the CA file to trust instead of the system store, verification on or off, the SNI
    // name (and the name checked) when it is not the URI's host, ALPN, or a context to reuse.
    tls::client_options tls{};
    // permessage-deflate (RFC 7692), offered on these terms when set; the server may decline it.
    // DANGEROUS: compressing secrets together with data an attacker can influence lets an attacker who
    // sees the (even encrypted) message sizes recover the secrets (CRIME/BREACH). Send such messages with
    // message_flags::disable_compression, or leave compression off. `client_*` bind our compressor,
    // `server_*` are asked of the server (which must honour them or decline).
    std::optional<deflate::options> dangerous_deflate{};
};

}  // namespace duplex
