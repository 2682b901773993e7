// What a send that must not wait does with a peer that reads too slowly (uWebSockets' maxBackpressure
// and closeOnBackpressureLimit): pub/sub's publish and the message-driven API's send never wait for a
// socket, so each socket has a limit on the bytes queued for it and a policy for what comes past it.
#pragma once

#include <cstddef>

namespace duplex {

enum class backpressure_policy {
    drop_message,      // the message is not queued for this socket (and counted as dropped)
    close_connection,  // the socket is failed with close 1008 (policy violation), as a send queue overflow
};

struct backpressure_options {
    // A message that finds at least this many bytes queued (not yet written) for the socket meets the
    // policy; one below it is queued whole, however large.
    std::size_t max_backpressure_bytes = 64 * 1024;
    backpressure_policy policy = backpressure_policy::drop_message;
};

// What happened to a message given to a socket without waiting.
enum class send_status {
    queued,   // in the socket's send queue; it leaves with the next write
    dropped,  // the socket was at its backpressure limit: not queued (with close_connection, the socket is failing)
    closed,   // the socket is closing, closed or failed: not queued
};

}  // namespace duplex
