// What the HTTP/2 fuzz targets (http2_connection.cpp, the server; http2_client.cpp, the client) share: the
// layout of their input, the check of the frames the side under test wrote, a transport whose peer can
// answer only once that side has nothing left to do, and the loop that runs the io_context to its end
// without letting time pass.
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/detail/erased_handler.hpp>

#include "fuzz_support.hpp"
#include "memory_stream.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

namespace fuzz {

// RFC 9113 §3.4: what a client sends before its SETTINGS.
constexpr std::string_view client_magic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// The inputs of the HTTP/2 targets: a configuration byte, then the peer's bytes. Bit 0 clear puts the
// pieces of `preface` before them (the peer's valid start, so that the fuzzer begins past it); bits 1-3
// choose the size of the reads; the other bits are the target's.
struct peer_input {
    std::uint8_t config = 0;
    bool preface_sent = false;
    std::shared_ptr<test::memory_stream::state> transport;
};

inline peer_input take_peer_input(const std::uint8_t* data, std::size_t size,
                                  std::initializer_list<std::string_view> preface) {
    constexpr std::size_t read_chunks[] = {SIZE_MAX, 1, 2, 9, 24, 100, 1000, 16384};
    input_reader in(data, size);
    peer_input out;
    out.config = in.byte();
    out.preface_sent = (out.config & 1) == 0;
    out.transport = std::make_shared<test::memory_stream::state>();
    auto& input = out.transport->input;
    const auto append = [&input](std::string_view bytes) {
        const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
        input.insert(input.end(), p, p + bytes.size());
    };
    if (out.preface_sent)
        for (const auto piece : preface) append(piece);
    append(as_text(in.rest()));
    out.transport->read_chunk = read_chunks[(out.config >> 1) & 7];
    return out;
}

struct http2_frame_head {
    std::size_t length = 0;
    std::uint8_t type = 0;
    std::uint8_t flags = 0;
    std::uint32_t stream_id = 0;
};

// The payload length a frame header starts with.
inline std::size_t http2_frame_length(const std::byte* header) noexcept {
    const auto* h = reinterpret_cast<const std::uint8_t*>(header);
    return (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
}

// `bytes` is a sequence of whole HTTP/2 frames, each with at most 16,384 bytes of payload (no side here
// raises SETTINGS_MAX_FRAME_SIZE) and of a type RFC 9113 defines (DATA … CONTINUATION: none of ours is an
// extension), the first a SETTINGS that is not an ACK when `settings_first`. `each(head)` sees every frame.
template <class Each>
void check_http2_frames(std::span<const std::byte> bytes, bool settings_first, Each each) {
    std::size_t at = 0;
    bool first = true;
    while (at + 9 <= bytes.size()) {
        const auto* h = reinterpret_cast<const std::uint8_t*>(bytes.data() + at);
        http2_frame_head head;
        head.length = http2_frame_length(bytes.data() + at);
        head.type = h[3];
        head.flags = h[4];
        head.stream_id = ((std::uint32_t{h[5]} & 0x7f) << 24) | (std::uint32_t{h[6]} << 16) | (std::uint32_t{h[7]} << 8) | h[8];
        FUZZ_CHECK(head.length <= 16384);
        FUZZ_CHECK(head.type <= 0x9);
        if (first && settings_first) FUZZ_CHECK(head.type == 0x4 && (head.flags & 1) == 0);
        first = false;
        each(head);
        at += 9 + head.length;
    }
    FUZZ_CHECK(at == bytes.size());
}

inline void check_http2_frames(std::span<const std::byte> bytes, bool settings_first) {
    check_http2_frames(bytes, settings_first, [](const http2_frame_head&) {});
}

// test::memory_stream whose reads, when paced, wait for the peer: a pending read is served only once the
// io_context has nothing else ready (run_to_end below), with at most one HTTP/2 frame of the input (and at
// most the read chunk). The peer then answers each frame only after the side under test has done all it
// could with the previous one (sent its request, its acknowledgements), as a server across a network
// does; unpaced, every read completes at once. Cancelling or closing ends a pending read with
// operation_aborted, as on a socket.
class paced_stream {
public:
    // What the stream and the driver share.
    struct pace {
        pace(const asio::any_io_executor& executor, std::shared_ptr<test::memory_stream::state> s, bool p)
            : state(std::move(s)), memory(executor, state), paced(p) {}

        std::shared_ptr<test::memory_stream::state> state;
        test::memory_stream memory;
        bool paced;
        std::size_t frame_end = 0;  // where the frame being read ends in the input
        asio::mutable_buffer into;
        duplex::detail::erased_handler<void(std::error_code, std::size_t)> parked;

        // Serves the pending read, if there is one (false when there is none).
        bool serve() {
            if (!parked) return false;
            const auto& input = state->input;
            const auto position = state->read_position;
            std::size_t n = into.size();
            if (position < input.size()) {
                if (frame_end <= position)
                    frame_end = input.size() - position < 9 ? input.size()
                                                            : position + 9 + http2_frame_length(input.data() + position);
                n = std::min(n, frame_end - position);
            }
            memory.async_read_some(asio::buffer(into.data(), n),
                                   [handler = std::move(parked)](std::error_code ec, std::size_t size) mutable {
                                       handler.complete(ec, size);
                                   });
            return true;
        }

        void abort_pending() {
            if (parked) parked.post(asio::error::operation_aborted, 0);
        }
    };

    using executor_type = asio::any_io_executor;
    using lowest_layer_type = paced_stream;
    using shutdown_type = test::memory_stream::shutdown_type;
    static constexpr shutdown_type shutdown_send = test::memory_stream::shutdown_send;

    explicit paced_stream(std::shared_ptr<pace> p) noexcept : pace_(std::move(p)) {}

    executor_type get_executor() const noexcept { return pace_->memory.get_executor(); }
    lowest_layer_type& lowest_layer() noexcept { return *this; }
    const lowest_layer_type& lowest_layer() const noexcept { return *this; }

    bool is_open() const noexcept { return pace_->memory.is_open(); }
    void close(std::error_code& ec) noexcept {
        pace_->memory.close(ec);
        pace_->abort_pending();
    }
    void cancel(std::error_code& ec) noexcept {
        ec = {};
        pace_->abort_pending();
    }
    void shutdown(shutdown_type what, std::error_code& ec) noexcept { pace_->memory.shutdown(what, ec); }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<pace> p, const MutableBufferSequence& b) {
                if (!p->paced || !p->memory.is_open()) return p->memory.async_read_some(b, std::move(handler));
                FUZZ_CHECK(!p->parked);  // one read at a time
                p->into = {};
                for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it)
                    if (asio::mutable_buffer piece(*it); piece.size() != 0) {
                        p->into = piece;
                        break;
                    }
                p->parked = decltype(p->parked)(std::move(handler), p->memory.get_executor());
            },
            token, pace_, buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return pace_->memory.async_write_some(buffers, std::forward<Token>(token));
    }

private:
    std::shared_ptr<pace> pace_;
};

// Runs `io` until nothing is left to do, bounded by steps rather than time: the transport completes at once
// (or, paced, as soon as nothing else is ready), so timers in the future never fire and running out of work
// before the side under test ended means it waits for something that never comes.
inline void run_to_end(asio::io_context& io, paced_stream::pace* pace = nullptr) {
    std::size_t steps = 0;
    for (;;) {
        if (io.poll_one() != 0) {
            FUZZ_CHECK(++steps < 10'000'000);
            continue;
        }
        if (!pace || !pace->serve()) return;
        io.restart();
    }
}

}  // namespace fuzz
