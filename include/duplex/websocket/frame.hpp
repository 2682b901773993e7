// RFC 6455 §5.2 frame headers: decoding from received bytes and encoding into an output buffer.
#pragma once

#include <duplex/websocket/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace duplex::ws {

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

constexpr bool is_known(opcode op) noexcept {
    switch (op) {
    case opcode::continuation: case opcode::text: case opcode::binary:
    case opcode::close: case opcode::ping: case opcode::pong:
        return true;
    }
    return false;
}

struct frame_header {
    bool fin = true;
    bool rsv1 = false, rsv2 = false, rsv3 = false;
    opcode op = opcode::text;
    bool masked = false;
    mask_key key{};
    std::uint64_t payload_length = 0;
};

// Largest encoded header: 2 bytes + 8 bytes of extended length + 4 bytes of mask key.
inline constexpr std::size_t max_header_size = 14;
inline constexpr std::size_t max_control_payload = 125;

enum class decode_status {
    ok,
    need_more,        // the header is not complete yet; call again with more bytes
    length_too_large, // a 64-bit length with its most significant bit set (§5.2)
};

struct decode_result {
    decode_status status;
    std::size_t header_size;  // bytes the header occupies when status == ok
};

// Decodes the header at the start of `data`. It checks only what belongs to the header's syntax; the
// protocol rules (reserved bits, opcodes, masking direction, control frame limits) are the stream's,
// which knows its role, state and negotiated extensions. Non-minimal length encodings are accepted,
// as RFC 6455 does not require minimal encoding from senders to be enforced.
inline decode_result decode_header(const std::byte* data, std::size_t size, frame_header& out) noexcept {
    if (size < 2) return {decode_status::need_more, 0};
    const auto b0 = std::to_integer<std::uint8_t>(data[0]);
    const auto b1 = std::to_integer<std::uint8_t>(data[1]);
    std::size_t need = 2;
    const std::uint8_t length7 = b1 & 0x7F;
    if (length7 == 126) need += 2;
    else if (length7 == 127) need += 8;
    const bool masked = (b1 & 0x80) != 0;
    if (masked) need += 4;
    if (size < need) return {decode_status::need_more, 0};

    out.fin = (b0 & 0x80) != 0;
    out.rsv1 = (b0 & 0x40) != 0;
    out.rsv2 = (b0 & 0x20) != 0;
    out.rsv3 = (b0 & 0x10) != 0;
    out.op = static_cast<opcode>(b0 & 0x0F);
    out.masked = masked;
    std::size_t pos = 2;
    if (length7 < 126) {
        out.payload_length = length7;
    } else {
        const std::size_t n = length7 == 126 ? 2 : 8;
        std::uint64_t length = 0;
        for (std::size_t i = 0; i < n; ++i) length = (length << 8) | std::to_integer<std::uint8_t>(data[pos + i]);
        if (length >> 63) return {decode_status::length_too_large, 0};
        out.payload_length = length;
        pos += n;
    }
    if (masked) {
        std::memcpy(out.key.data(), data + pos, 4);
        pos += 4;
    }
    return {decode_status::ok, pos};
}

// Writes the header into `out` (at least max_header_size bytes) using the shortest length form, and
// returns its size.
inline std::size_t encode_header(const frame_header& h, std::byte* out) noexcept {
    out[0] = std::byte((h.fin ? 0x80 : 0) | (h.rsv1 ? 0x40 : 0) | (h.rsv2 ? 0x20 : 0) | (h.rsv3 ? 0x10 : 0) |
                       static_cast<std::uint8_t>(h.op));
    const std::uint8_t mask_bit = h.masked ? 0x80 : 0;
    std::size_t pos = 2;
    if (h.payload_length < 126) {
        out[1] = std::byte(mask_bit | static_cast<std::uint8_t>(h.payload_length));
    } else if (h.payload_length <= 0xFFFF) {
        out[1] = std::byte(mask_bit | 126);
        out[2] = std::byte(h.payload_length >> 8);
        out[3] = std::byte(h.payload_length & 0xFF);
        pos = 4;
    } else {
        out[1] = std::byte(mask_bit | 127);
        for (int i = 0; i < 8; ++i) out[2 + i] = std::byte((h.payload_length >> (56 - 8 * i)) & 0xFF);
        pos = 10;
    }
    if (h.masked) {
        std::memcpy(out + pos, h.key.data(), 4);
        pos += 4;
    }
    return pos;
}

}  // namespace duplex::ws
