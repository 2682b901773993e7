// duplex::http2_limits — what one HTTP/2 connection of the app host lets a client do: the SETTINGS we
// advertise and the protections of libnghttp2 against hostile peers, with safe defaults. Every limit is
// enforced by nghttp2 or by the connection (app/detail/http2_connection.hpp), and each has a test that
// crosses it (tests/http2/).
#pragma once

#include <cstddef>
#include <cstdint>

namespace duplex {

struct http2_limits {
    // SETTINGS_MAX_CONCURRENT_STREAMS: requests (and WebSockets, each holding its stream for its whole
    // life) open at once on one connection. A stream beyond it is refused with RST_STREAM(REFUSED_STREAM)
    // (RFC 9113 §5.1.2), and a client that ignores the acknowledged setting gets a PROTOCOL_ERROR GOAWAY.
    std::uint32_t max_concurrent_streams = 100;
    // SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 §6.5.2 does (name + value + 32 per field, after
    // HPACK decoding, so an HPACK bomb counts at its decoded size): a larger request is answered 431
    // without reaching the pipeline, and its fields are not kept.
    std::uint32_t max_header_list_size = 32 * 1024;
    // SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on one stream before the handler has taken it
    // (a WebSocket's window reopens only as its handler receives). 1 MiB lets one WebSocket run at full
    // speed on a fast link while a stalled handler holds at most this much of its peer's data.
    std::uint32_t initial_stream_window_size = 1024 * 1024;
    // The connection's receive window (all streams together), raised from RFC 9113's 65,535 at the start.
    std::uint32_t connection_window_size = 16 * 1024 * 1024;
    // Rapid reset (CVE-2023-44487): a client may reset this many streams at once, refilled by
    // stream_reset_rate per second; past that the connection ends with GOAWAY. nghttp2's defaults.
    std::uint64_t stream_reset_burst = 1000;
    std::uint64_t stream_reset_rate = 33;
    // CONTINUATION frames after one HEADERS (CVE-2024-27316 class floods): one more ends the connection.
    std::size_t max_continuations = 8;
    // Entries in one SETTINGS frame; more end the connection (nghttp2's default).
    std::size_t max_settings = 32;
    // Frames that cost the server work and give it nothing (CVE-2019-9518 and kin). Past each bound the
    // connection ends with GOAWAY(ENHANCE_YOUR_CALM). Defaults are Netty's and Envoy's.
    // DATA frames without payload and without END_STREAM in a row (a frame with payload starts over).
    std::uint32_t max_consecutive_empty_data_frames = 2;
    // WINDOW_UPDATE frames received per DATA frame sent (a client reopens windows as it takes what we
    // send: two per frame, its stream's and its connection's), beyond 5 + 2 per request.
    std::uint32_t max_window_updates_per_data_frame = 10;
    // PRIORITY frames (RFC 9113 deprecates them) received per request, plus that many before the first.
    std::uint32_t max_priority_frames_per_stream = 100;
};

}  // namespace duplex
