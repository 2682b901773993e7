// The limits and timeouts of one WebSocket stream, each with a safe default.
#pragma once

#include <duplex/http/parser.hpp>

#include <chrono>
#include <cstddef>

namespace duplex::ws {

struct stream_options {
    // A message whose size would pass this is refused with close code 1009 before its payload is read;
    // a compressed message's decompressed size is checked as it is decompressed (1009 at the limit).
    std::size_t max_message_size = 16 * 1024 * 1024;
    // A data frame whose announced length passes this is refused with close code 1009 at its header,
    // before its payload is read. Uncompressed, the message limit already bounds each frame; this also
    // bounds the compressed bytes of a compressed frame, which the message limit (on what comes out of
    // the decompressor) does not. Raise it with max_message_size for larger single-frame messages.
    std::size_t max_frame_size = 16 * 1024 * 1024;
    // A message in more frames than this (the first and its continuations) is refused with close code
    // 1008 at the header of the frame past it: empty or tiny fragments would otherwise keep a receive
    // busy while the message does not grow. 65536 lets a 16 MiB message come in 256-byte fragments
    // (Autobahn's most fragmented case, 4 MiB in 64-byte fragments, is exactly 65536).
    std::size_t max_fragments_per_message = 64 * 1024;
    // Bytes one read pulls from the transport; a receive into a larger buffer reads straight into it.
    std::size_t receive_buffer_size = 4 * 1024;
    // Over a TCP socket the receive buffer is taken when data arrives and given back while the connection
    // is quiet: a read that waited at least this long marks it quiet, and the next wait on an emptied
    // buffer frees it and waits for data with a 1-byte MSG_PEEK instead (one extra syscall when data comes).
    // A new connection starts quiet. Zero waits without a buffer every time; duration::max() keeps it for
    // the connection's life. (TLS keeps its own buffers in the TLS layer, so there the buffer is kept.)
    std::chrono::steady_clock::duration release_receive_buffer_after = std::chrono::seconds(1);
    // Bytes queued for sending beyond which send() waits for the peer to read (backpressure), and
    // receive stops reading (a peer's pings would otherwise queue pongs it does not read).
    std::size_t send_queue_high_water = 64 * 1024;
    // A send that finds more than this already queued fails the connection: a close frame with 1008
    // goes after the write in flight (what was queued is dropped), the transport is dropped after
    // close_timeout, and every pending send throws websocket_errc::send_queue_full. Backpressure keeps
    // one sender below send_queue_high_water; this bounds many senders at once (up to this plus one
    // message each of those already past the check). Below send_queue_high_water, a slow reader is
    // disconnected instead of waited for.
    std::size_t max_send_queue_bytes = 4 * 1024 * 1024;
    // While a send (or a receive held back by the full queue) waits on the peer to read, the peer must
    // take some of our bytes at least this often: when for this long no write to it completes and (on
    // Linux) the kernel's send queue does not shrink either, the connection fails as above, with
    // websocket_errc::send_timeout. A slow but steady reader is never cut off. Zero: wait as long as it takes.
    std::chrono::steady_clock::duration send_timeout = std::chrono::seconds(60);
    // Payloads at least this large are written from the caller's buffer (server role) instead of copied.
    // Smaller ones are copied so that the messages sent until the connection next waits share one write
    // (and one wake-up of the peer): echoing 16 KiB messages, that took the server's CPU per message from
    // 23 µs to 13 µs (benchmarks/run, 16KiB_d4; it was 16 KiB before).
    std::size_t direct_write_threshold = 64 * 1024;
    // How long the close handshake may take before the transport is dropped.
    std::chrono::steady_clock::duration close_timeout = std::chrono::seconds(5);
    // How long the opening handshake (request or response) may take.
    std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
    // Limits of the HTTP head read during the opening handshake (431 / 414, see http::parser_limits).
    http::parser_limits http_limits{};
};

}  // namespace duplex::ws
