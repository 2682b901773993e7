// Where a WebSocket is in its life, and which end of the connection it is.
#pragma once

namespace duplex {

// ASP.NET's WebSocketState.
enum class websocket_state {
    none,
    connecting,      // the opening handshake is in progress
    open,
    close_sent,      // we sent a close frame and wait for the peer's
    close_received,  // the peer's close frame arrived; call close() or close_output() to answer it
    closed,          // both close frames were exchanged
    aborted,         // abort(), a protocol violation or a transport failure ended the connection
};

namespace ws {
// The role decides masking (clients mask, servers must not) and who checks what in the handshake.
enum class role { server, client };
}  // namespace ws

}  // namespace duplex
