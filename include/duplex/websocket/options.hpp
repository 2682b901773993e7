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
    // Bytes one read pulls from the transport; a receive into a larger buffer reads straight into it.
    std::size_t receive_buffer_size = 4 * 1024;
    // Bytes queued for sending beyond which send() waits for the peer to read (backpressure).
    std::size_t send_queue_high_water = 64 * 1024;
    // Payloads at least this large are written from the caller's buffer (server role) instead of copied.
    std::size_t direct_write_threshold = 16 * 1024;
    // How long the close handshake may take before the transport is dropped.
    std::chrono::steady_clock::duration close_timeout = std::chrono::seconds(5);
    // How long the opening handshake (request or response) may take.
    std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
    // Limits of the HTTP head read during the opening handshake.
    http::parser_limits http_limits{};
};

}  // namespace duplex::ws
