// How the WebSocket layer ends the layer below it. Socket-like transports (TCP, Unix sockets) are
// handled here; other layers (TLS) provide overloads of the same names next to their stream type.
#pragma once

#include <system_error>

namespace duplex::detail {

// Half-closes the sending direction, so the peer sees end-of-stream after our last frame while we can
// still read what it has in flight (a lingering close that avoids RST discarding our close frame).
template <class Transport>
void shutdown_send(Transport& t) noexcept {
    std::error_code ignored;
    t.lowest_layer().shutdown(Transport::lowest_layer_type::shutdown_send, ignored);
}

// Closes the transport at once; pending operations complete with operation_aborted.
template <class Transport>
void close_transport(Transport& t) noexcept {
    std::error_code ignored;
    t.lowest_layer().close(ignored);
}

template <class Transport>
bool transport_is_open(const Transport& t) noexcept {
    return t.lowest_layer().is_open();
}

}  // namespace duplex::detail
