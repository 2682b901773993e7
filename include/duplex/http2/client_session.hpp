// duplex::http2::client_session — a client-side nghttp2_session without I/O, the counterpart of
// server_session (session.hpp): bytes read from the connection go in through receive(), the frames to
// send come out through produce(), and what nghttp2 parses is handed to `Events` (the client's
// connection, client/http2_connection.hpp) through plain member calls.
//
// It sends SETTINGS_ENABLE_PUSH = 0 (a WebSocket client has no use for pushed responses) and the
// windows of http2_limits, and like the server it does not reopen windows by itself: the owner calls
// consume_stream() for what a WebSocket has read, so a receiver that stops reading stops its own stream.
// Whether the server takes RFC 8441's extended CONNECT is only known from its SETTINGS
// (connect_protocol_enabled()); nghttp2 does not stop a client from sending :protocol before, so the
// owner waits for on_settings().
//
// Events must provide:
//   void on_settings();                                            the server's first SETTINGS
//   int on_header(std::int32_t id, std::string_view name, std::string_view value);   a field of a head
//   int on_head(std::int32_t id, bool end_stream);                 a head (HEADERS and CONTINUATIONs) is
//                                                                  complete: an interim response, the
//                                                                  response, or trailers
//   int on_data(std::int32_t id, std::span<const std::byte> data); a piece of a DATA frame's payload
//   int on_end_of_stream(std::int32_t id);                         END_STREAM on DATA or trailers
//   int on_stream_close(std::int32_t id, std::uint32_t error_code); the stream is gone (0: NO_ERROR)
//   void on_goaway(std::int32_t last_stream_id, std::uint32_t error_code);
//   void on_end_sent(std::int32_t id);                             our END_STREAM went out
//   ssize_t read_body(std::int32_t id, std::uint8_t* buffer, std::size_t length, std::uint32_t* data_flags)
// Returning nonzero from the int ones ends the connection (NGHTTP2_ERR_CALLBACK_FAILURE).
#pragma once

#include <duplex/http2/limits.hpp>
#include <duplex/http2/session.hpp>
#include <duplex/http2/session_base.hpp>

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::http2 {

template <class Events>
class client_session : public session_base {
public:
    client_session(Events& events, const http2_limits& limits)
        : session_base(false, limits, this, &set_callbacks, settings_for(limits)), events_(events) {}

    // Feeds bytes read from the connection; 0, or nghttp2's (fatal) error: the connection must end.
    int receive(std::span<const std::byte> bytes) {
        const auto n = receive_bytes(bytes);
        return n < 0 ? static_cast<int>(n) : 0;
    }

    // What the server's SETTINGS said (meaningful once on_settings() was called).
    bool connect_protocol_enabled() const noexcept {
        return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1;
    }
    std::uint32_t max_concurrent_streams() const noexcept {
        return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    }

    // A request whose body is produced by Events::read_body (an extended CONNECT's tunnel): the new
    // stream's id, or nghttp2's error (NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE once the ids are used up).
    std::int32_t submit_request(std::span<const nghttp2_nv> fields) {
        nghttp2_data_provider provider{};
        provider.read_callback = &read_body;
        return nghttp2_submit_request(session_, nullptr, fields.data(), fields.size(), &provider, nullptr);
    }

private:
    static void set_callbacks(nghttp2_session_callbacks* callbacks) {
        nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &on_frame_send);
    }
    // No pushes (a WebSocket client has no use for them), and the limits' window and header list size.
    static std::array<nghttp2_settings_entry, 3> settings_for(const http2_limits& limits) {
        return {{{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_stream_window_size},
                 {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size}}};
    }
    static client_session& self(void* user_data) noexcept { return *static_cast<client_session*>(user_data); }
    static int failed(int rv) noexcept { return rv == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE; }

    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user_data) {
        // The heads of our streams (nghttp2 refuses pushes: SETTINGS_ENABLE_PUSH is 0).
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat == NGHTTP2_HCAT_PUSH_RESPONSE) return 0;
        return failed(self(user_data).events_.on_header(
            frame->hd.stream_id, std::string_view(reinterpret_cast<const char*>(name), namelen),
            std::string_view(reinterpret_cast<const char*>(value), valuelen)));
    }

    static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
        auto& s = self(user_data);
        auto& events = s.events_;
        const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        switch (frame->hd.type) {
        case NGHTTP2_SETTINGS:
            if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !s.settings_seen_) {
                s.settings_seen_ = true;
                events.on_settings();
            }
            return 0;
        case NGHTTP2_HEADERS:
            if (frame->headers.cat == NGHTTP2_HCAT_PUSH_RESPONSE) return 0;
            return failed(events.on_head(frame->hd.stream_id, end_stream));
        case NGHTTP2_DATA: return end_stream ? failed(events.on_end_of_stream(frame->hd.stream_id)) : 0;
        case NGHTTP2_GOAWAY:
            events.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
            return 0;
        default: return 0;
        }
    }

    static int on_data_chunk_recv(nghttp2_session*, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                                  std::size_t len, void* user_data) {
        return failed(self(user_data).events_.on_data(stream_id, std::span(reinterpret_cast<const std::byte*>(data), len)));
    }

    static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user_data) {
        return failed(self(user_data).events_.on_stream_close(stream_id, error_code));
    }

    static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
        if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
            self(user_data).events_.on_end_sent(frame->hd.stream_id);
        return 0;
    }

    static ssize_t read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buffer, std::size_t length,
                             std::uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
        return self(user_data).events_.read_body(stream_id, buffer, length, data_flags);
    }

    Events& events_;
    bool settings_seen_ = false;
};

}  // namespace duplex::http2
