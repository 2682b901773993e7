// duplex::http2::session_base — what the server's and the client's sessions (session.hpp,
// client_session.hpp) share: one nghttp2_session without I/O, created with nghttp2's protections from
// http2_limits, without automatic window updates (the owner gives windows back) and with its memory
// recycled (session_memory.hpp), that takes the bytes read from the connection and gives out the frames
// to write.
#pragma once

#include <duplex/http2/limits.hpp>
#include <duplex/http2/session_memory.hpp>

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace duplex::http2 {

class session_base {
public:
    session_base(const session_base&) = delete;
    session_base& operator=(const session_base&) = delete;

    // Appends the frames ready to go to `out` until it holds at least `enough` bytes or nothing is
    // ready (so that many frames leave in one write); 0, or nghttp2's (fatal) error.
    int produce(std::vector<std::byte>& out, std::size_t enough) {
        while (out.size() < enough) {
            const std::uint8_t* data = nullptr;
            const auto n = nghttp2_session_mem_send(session_, &data);
            if (n < 0) return static_cast<int>(n);
            if (n == 0) break;
            const auto* bytes = reinterpret_cast<const std::byte*>(data);
            out.insert(out.end(), bytes, bytes + n);
        }
        return 0;
    }

    bool want_read() const noexcept { return nghttp2_session_want_read(session_) != 0; }
    bool want_write() const noexcept { return nghttp2_session_want_write(session_) != 0; }

    // A stream whose body provider returned NGHTTP2_ERR_DEFERRED has data (or its end) again.
    void resume(std::int32_t id) noexcept { nghttp2_session_resume_data(session_, id); }
    // Received DATA counts against two windows, given back separately. The connection's as soon as it
    // arrives (the bytes are then ours to hold, bounded per stream), so that a stream whose reader does
    // not read never blocks the others; a stream's once its reader has taken the bytes, so that it
    // blocks its own peer. nghttp2 sends WINDOW_UPDATE once enough has been given back (its policy: half
    // the window).
    void consume_connection(std::size_t n) noexcept {
        if (n != 0) nghttp2_session_consume_connection(session_, n);
    }
    void consume_stream(std::int32_t id, std::size_t n) noexcept {
        if (n != 0) nghttp2_session_consume_stream(session_, id, n);
    }
    void reset(std::int32_t id, std::uint32_t error_code) noexcept {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, error_code);
    }
    // The end of the connection: GOAWAY with `error_code`, after which want_read() and want_write() turn
    // false once it is out (after a fatal receive error, the peer learns why, RFC 9113 §5.4.1).
    void terminate(std::uint32_t error_code) noexcept { nghttp2_session_terminate_session(session_, error_code); }

protected:
    // A server's or a client's session whose callbacks `set_callbacks(nghttp2_session_callbacks*)` sets
    // (their user data is `user_data`), sending `settings` and opening the connection's window to
    // limits.connection_window_size.
    template <class SetCallbacks>
    session_base(bool server, const http2_limits& limits, void* user_data, SetCallbacks set_callbacks,
                 std::span<const nghttp2_settings_entry> settings) {
        nghttp2_session_callbacks* callbacks = nullptr;
        if (nghttp2_session_callbacks_new(&callbacks) != 0) throw std::bad_alloc();
        set_callbacks(callbacks);
        nghttp2_option* option = nullptr;
        if (nghttp2_option_new(&option) != 0) {
            nghttp2_session_callbacks_del(callbacks);
            throw std::bad_alloc();
        }
        nghttp2_option_set_no_auto_window_update(option, 1);
        nghttp2_option_set_max_settings(option, limits.max_settings);
        nghttp2_option_set_stream_reset_rate_limit(option, limits.stream_reset_burst, limits.stream_reset_rate);
        nghttp2_option_set_max_continuations(option, limits.max_continuations);
        nghttp2_mem* memory = session_memory::get();
        const int created = server ? nghttp2_session_server_new3(&session_, callbacks, user_data, option, memory)
                                   : nghttp2_session_client_new3(&session_, callbacks, user_data, option, memory);
        nghttp2_option_del(option);
        nghttp2_session_callbacks_del(callbacks);
        if (created != 0) throw std::bad_alloc();
        int rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
        if (rv == 0 && limits.connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
            rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                                       static_cast<std::int32_t>(limits.connection_window_size));
        if (rv != 0) {
            nghttp2_session_del(session_);
            throw std::invalid_argument(std::string("http2_limits: ") + nghttp2_strerror(rv));
        }
    }
    ~session_base() { nghttp2_session_del(session_); }

    // Feeds bytes read from the connection: the count, or nghttp2's (fatal) error.
    ssize_t receive_bytes(std::span<const std::byte> bytes) {
        return nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }

    nghttp2_session* session_ = nullptr;
};

}  // namespace duplex::http2
