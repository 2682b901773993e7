// duplex::http2::server_session<Events> — a server-side nghttp2_session without I/O: bytes read from
// the connection go in through receive(), the frames to send come out through produce() (appended to
// the connection's write buffer, so that many frames leave in one write), and what nghttp2 parses is
// handed to `Events` (the connection, app/detail/http2_connection.hpp) through plain member calls.
//
// It advertises SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441), so extended CONNECT is accepted (and
// validated by nghttp2's HTTP messaging: :protocol only with CONNECT, :scheme, :path and :authority
// present). Windows are not reopened automatically: the owner calls consume() for what its handlers
// have taken (consume_stream), so a stream whose handler stops reading stops its peer and no other stream.
//
// Events must provide (stream ids are the client's, odd):
//   int on_begin_request(std::int32_t id);                            HEADERS of a new request begin
//   int on_header(std::int32_t id, std::string_view name, std::string_view value);
//   int on_request(std::int32_t id, bool end_stream);                 the request's HEADERS are complete
//   int on_data(std::int32_t id, std::span<const std::byte> data);    a piece of a DATA frame's payload
//   int on_end_of_request(std::int32_t id);                           END_STREAM on DATA or trailers
//   int on_stream_close(std::int32_t id, std::uint32_t error_code);   the stream is gone (0: NO_ERROR)
//   void on_response_end(std::int32_t id);                            our END_STREAM went out
//   nghttp2_ssize-like read_body(void* source, std::int32_t id, std::uint8_t* buffer, std::size_t length,
//                                std::uint32_t* data_flags)           the body of a submitted response
// Returning nonzero from the first six ends the connection (NGHTTP2_ERR_CALLBACK_FAILURE).
//
// Floods of frames that nghttp2 accepts one by one (empty DATA, WINDOW_UPDATE, PRIORITY: http2_limits)
// are counted here, from every frame's header: past a bound receive() fails with NGHTTP2_ERR_FLOODED.
#pragma once

#include <duplex/http2/limits.hpp>
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

// A header field for submit_response; names must be lowercase (RFC 9113 §8.2.1).
inline nghttp2_nv field(std::string_view name, std::string_view value) noexcept {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

template <class Events>
class server_session : public session_base {
public:
    server_session(Events& events, const http2_limits& limits)
        : session_base(true, limits, this, &set_callbacks, settings_for(limits)), events_(events), limits_(limits) {}

    // Feeds bytes read from the connection; 0, or nghttp2's (fatal) error: the connection must end. A
    // protocol error of the peer is not an error here: nghttp2 queues the GOAWAY and ignores the rest.
    int receive(std::span<const std::byte> bytes) {
        const auto n = receive_bytes(bytes);
        if (n >= 0) return 0;
        return flood_.empty() ? static_cast<int>(n) : NGHTTP2_ERR_FLOODED;
    }
    // Which flood ended the connection (receive() gave NGHTTP2_ERR_FLOODED for it), or empty.
    std::string_view flood() const noexcept { return flood_; }

    // The response to stream `id`: `fields` start with ":status". With a body, `source` is handed back
    // to Events::read_body; without one, the HEADERS frame ends the stream.
    int submit_response(std::int32_t id, std::span<const nghttp2_nv> fields, void* source, bool has_body) {
        nghttp2_data_provider provider{};
        provider.source.ptr = source;
        provider.read_callback = &read_body;
        return nghttp2_submit_response(session_, id, fields.data(), fields.size(), has_body ? &provider : nullptr);
    }
    // An interim response (100 Continue) on stream `id`.
    int submit_informational(std::int32_t id, std::string_view status) {
        const nghttp2_nv fields[] = {field(":status", status)};
        return nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, id, nullptr, fields, std::size(fields), nullptr);
    }
    // The graceful end (RFC 9113 §6.8): GOAWAY naming the last stream we took; those finish, no new
    // ones start. The connection is done once they have (want_read() and want_write() turn false).
    void go_away(std::uint32_t error_code = NGHTTP2_NO_ERROR) noexcept {
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                              error_code, nullptr, 0);
    }
    // The remote end's window for stream `id` (what we may still send on it).
    std::int32_t remote_window(std::int32_t id) const noexcept {
        return nghttp2_session_get_stream_remote_window_size(session_, id);
    }

private:
    static void set_callbacks(nghttp2_session_callbacks* callbacks) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, &on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &on_frame_send);
    }
    // RFC 8441's SETTINGS_ENABLE_CONNECT_PROTOCOL with the limits.
    static std::array<nghttp2_settings_entry, 4> settings_for(const http2_limits& limits) {
        return {{{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_stream_window_size},
                 {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size},
                 {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}}};
    }
    static server_session& self(void* user_data) noexcept { return *static_cast<server_session*>(user_data); }
    static int failed(int rv) noexcept { return rv == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE; }

    // Every frame's header, before nghttp2 acts on it (also frames on closed streams, which it ignores).
    static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* frame, void* user_data) {
        auto& s = self(user_data);
        auto& seen = s.seen_;
        const auto& limits = s.limits_;
        switch (frame->type) {
        case NGHTTP2_HEADERS:
            ++seen.headers;
            seen.empty_data_in_a_row = 0;
            return 0;
        case NGHTTP2_DATA:
            if (frame->length != 0 || (frame->flags & NGHTTP2_FLAG_END_STREAM) != 0) seen.empty_data_in_a_row = 0;
            else if (++seen.empty_data_in_a_row > limits.max_consecutive_empty_data_frames)
                return s.flooded("empty DATA frames past max_consecutive_empty_data_frames");
            return 0;
        case NGHTTP2_WINDOW_UPDATE:
            if (++seen.window_updates >
                5 + 2 * seen.headers + std::uint64_t{limits.max_window_updates_per_data_frame} * seen.data_sent)
                return s.flooded("WINDOW_UPDATE frames past max_window_updates_per_data_frame");
            return 0;
        case NGHTTP2_PRIORITY:
            if (++seen.priorities > std::uint64_t{limits.max_priority_frames_per_stream} * (seen.headers + 1))
                return s.flooded("PRIORITY frames past max_priority_frames_per_stream");
            return 0;
        default: return 0;
        }
    }
    int flooded(std::string_view which) noexcept {
        flood_ = which;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }

    static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        return failed(self(user_data).events_.on_begin_request(frame->hd.stream_id));
    }

    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user_data) {
        // Trailers carry nothing the pipeline reads; their fields are dropped.
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        return failed(self(user_data).events_.on_header(
            frame->hd.stream_id, std::string_view(reinterpret_cast<const char*>(name), namelen),
            std::string_view(reinterpret_cast<const char*>(value), valuelen)));
    }

    static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
        auto& events = self(user_data).events_;
        const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        switch (frame->hd.type) {
        case NGHTTP2_HEADERS:
            if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) return failed(events.on_request(frame->hd.stream_id, end_stream));
            return end_stream ? failed(events.on_end_of_request(frame->hd.stream_id)) : 0;
        case NGHTTP2_DATA: return end_stream ? failed(events.on_end_of_request(frame->hd.stream_id)) : 0;
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
        if (frame->hd.type == NGHTTP2_DATA) ++self(user_data).seen_.data_sent;
        if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
            self(user_data).events_.on_response_end(frame->hd.stream_id);
        return 0;
    }

    static ssize_t read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buffer, std::size_t length,
                             std::uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
        return self(user_data).events_.read_body(source->ptr, stream_id, buffer, length, data_flags);
    }

    Events& events_;
    const http2_limits limits_;
    // What the flood bounds are measured against.
    struct frame_counts {
        std::uint64_t headers = 0, data_sent = 0, window_updates = 0, priorities = 0;
        std::uint32_t empty_data_in_a_row = 0;
    } seen_;
    std::string_view flood_;
};

}  // namespace duplex::http2
