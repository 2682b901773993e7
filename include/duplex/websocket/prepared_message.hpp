// duplex::ws::prepared_message — one message encoded once for many receivers (uWebSockets'
// PreparedMessage, taken one step further): the whole server frame, header included, and the same
// message deflated for each window size its receivers negotiated. Send queues take references to these
// frames instead of encoding the message again (pub/sub's publish; ws::detail::stream_core::send_prepared).
//
// Compression (RFC 7692): each compressed form is deflated from an empty window with window bits w, so
// it refers only to bytes of its own message, no further back than 2^w. Any inflater whose window is at
// least w decodes it, with or without context takeover, so one compression serves every receiver of that
// window size (and larger ones). A receiver's own compressor, if it keeps its context, must forget it
// before its next message (permessage::reset_send_context): the peer's window now ends with this message.
#pragma once

#include <duplex/deflate/negotiation.hpp>
#include <duplex/deflate/permessage.hpp>
#include <duplex/websocket/detail/shared_frame.hpp>
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/message.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

namespace duplex::ws {

// A set of window sizes (8–15): bit w − 8 stands for window bits w.
using window_set = std::uint8_t;
constexpr window_set window_bit(int window_bits) noexcept { return static_cast<window_set>(1u << (window_bits - 8)); }

namespace detail {

// The calling thread's compressor for whole messages from an empty window of `window_bits`: zlib's
// state stays allocated and is reset between messages (about 193 KB at window 15, once per thread).
inline duplex::deflate::permessage& fresh_window_compressor(int window_bits) {
    thread_local std::array<std::optional<duplex::deflate::permessage>, 8> compressors;
    auto& slot = compressors[static_cast<std::size_t>(window_bits - duplex::deflate::min_window_bits)];
    if (!slot) {
        duplex::deflate::negotiated agreed;
        agreed.server_max_window_bits = window_bits;
        agreed.server_no_context_takeover = true;
        duplex::deflate::codec_options options;
        options.release_between_messages = false;
        slot.emplace(role::server, agreed, options);
    }
    return *slot;
}

// A final, unmasked server frame of `payload` into a shared block.
inline shared_frame_ptr encode_shared_frame(opcode op, bool compressed, std::span<const std::byte> payload) {
    frame_header header;
    header.op = op;
    header.rsv1 = compressed;
    header.payload_length = payload.size();
    std::array<std::byte, max_header_size> head;
    const auto head_size = encode_header(header, head.data());
    auto frame = shared_frame::make(head_size + payload.size());
    std::memcpy(frame->data(), head.data(), head_size);
    if (!payload.empty()) std::memcpy(frame->data() + head_size, payload.data(), payload.size());
    return frame;
}

}  // namespace detail

class prepared_message {
public:
    prepared_message() = default;

    // Encodes `payload` as one final server frame of `type` (text or binary) and, unless `flags` has
    // disable_compression, deflates it for each window size in `windows`, keeping the compressed form
    // only where it is smaller. A text payload is not checked for UTF-8 here: the caller vouches for it.
    prepared_message(std::span<const std::byte> payload, message_type type, message_flags flags = message_flags::none,
                     window_set windows = 0)
        : type_(type), payload_size_(payload.size()) {
        if (type == message_type::close) throw std::invalid_argument("a close is not a message to prepare");
        const auto op = type == message_type::text ? opcode::text : opcode::binary;
        plain_ = detail::encode_shared_frame(op, false, payload);
        if (has_flag(flags, message_flags::disable_compression)) return;
        thread_local std::vector<std::byte> compressed;
        for (int w = duplex::deflate::min_window_bits; w <= duplex::deflate::max_window_bits; ++w) {
            if ((windows & window_bit(w)) == 0) continue;
            compressed.clear();
            detail::fresh_window_compressor(w).compress(payload, true, compressed);
            if (compressed.size() < payload.size())
                deflated_[static_cast<std::size_t>(w - duplex::deflate::min_window_bits)] =
                    detail::encode_shared_frame(op, true, compressed);
        }
    }

    explicit operator bool() const noexcept { return static_cast<bool>(plain_); }
    message_type type() const noexcept { return type_; }
    std::size_t payload_size() const noexcept { return payload_size_; }
    // The uncompressed payload (inside the plain frame).
    std::span<const std::byte> payload() const noexcept {
        return plain_->bytes().subspan(plain_->size() - payload_size_);
    }
    // The frame for receivers without compression (or for whom it did not pay).
    const detail::shared_frame_ptr& plain() const noexcept { return plain_; }
    // The compressed frame a receiver whose inflater's window is `window_bits` can decode: the one
    // prepared for the largest window not above it; null when there is none.
    const detail::shared_frame_ptr* deflated_for(int window_bits) const noexcept {
        for (int w = window_bits; w >= duplex::deflate::min_window_bits; --w) {
            const auto& frame = deflated_[static_cast<std::size_t>(w - duplex::deflate::min_window_bits)];
            if (frame) return &frame;
        }
        return nullptr;
    }

private:
    message_type type_ = message_type::binary;
    std::size_t payload_size_ = 0;
    detail::shared_frame_ptr plain_;
    std::array<detail::shared_frame_ptr, 8> deflated_;
};

}  // namespace duplex::ws
