// duplex::tls — the TLS layer (OpenSSL through asio::ssl): contexts for servers and clients, and
// tls::stream<Next>, the stream the WebSocket layer stacks on for https:// and wss://.
#pragma once

#include <duplex/tls/context.hpp>
#include <duplex/tls/error.hpp>
#include <duplex/tls/stream.hpp>
