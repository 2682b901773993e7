// What a connection's send queue holds besides its own bytes: references to shared frames (pub/sub),
// placed between the bytes at the offsets where they were queued, so that one gather write sends
// everything in order. Built the first time a shared frame comes, so a connection that never gets one
// carries a null pointer (stream_core::shared_).
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/detail/shared_frame.hpp>
#include <duplex/websocket/prepared_message.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace duplex::ws::detail {

// Shared frames up to this size are copied into the connection's own output buffer rather than
// referenced: a copy of a small frame costs less than holding a reference (an atomic increment and
// decrement, and an iovec entry more in the write), and with TLS it keeps small messages in one record.
inline constexpr std::size_t shared_frame_copy_limit = 1024;

struct shared_frame_queue {
    struct placed {
        std::size_t offset;  // in the output buffer: the frame goes before the byte at this offset
        shared_frame_ptr frame;
    };
    std::vector<placed> queued;     // with the output buffer (out_)
    std::vector<placed> in_flight;  // with the buffer being written (in_flight_)
    // Messages that came while one of our own was being sent in fragments: they follow its end.
    std::vector<prepared_message> deferred;
    std::vector<asio::const_buffer> gather;  // the buffers of the write in flight
    std::size_t queued_bytes = 0;             // of the frames in `queued`
    // A compressed shared frame went to the peer since our compressor's last message: the compressor
    // must forget its context before the next one (permessage::reset_send_context).
    bool reset_compressor = false;

    void discard_queued() noexcept {
        queued.clear();
        queued_bytes = 0;
    }

    // Moves what was queued to the write that starts now (the output buffers just traded places).
    void start_write() {
        std::swap(queued, in_flight);
        queued_bytes = 0;
    }

    // The buffers of a write of `bytes` (the output buffer being written) with the frames in flight in
    // place, then `tail`; valid until the next call.
    std::span<const asio::const_buffer> gather_with(asio::const_buffer bytes, std::span<const asio::const_buffer> tail) {
        gather.clear();
        const auto* data = static_cast<const std::byte*>(bytes.data());
        std::size_t at = 0;
        for (const auto& p : in_flight) {
            if (p.offset > at) gather.emplace_back(data + at, p.offset - at);
            gather.emplace_back(p.frame->data(), p.frame->size());
            at = p.offset;
        }
        if (bytes.size() > at) gather.emplace_back(data + at, bytes.size() - at);
        gather.insert(gather.end(), tail.begin(), tail.end());
        return gather;
    }
};

}  // namespace duplex::ws::detail
