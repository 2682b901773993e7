// What the load generator and the fan-out benchmark's raw server put on the wire: payloads, WebSocket
// frames built once, and a train of one frame repeated so that k of them leave in one send.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

namespace bench {

constexpr std::array<std::uint8_t, 4> mask_key{0x37, 0xFA, 0x21, 0x3D};

// Text payloads are ASCII words (valid UTF-8 that compresses like prose); binary ones are pseudo-random.
inline std::string make_payload(std::size_t size, bool text) {
    std::string payload(size, '\0');
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    const auto next = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    if (!text) {
        for (auto& c : payload) c = static_cast<char>(next() & 0xFF);
        return payload;
    }
    static constexpr std::string_view words[] = {"echo",   "frame",  "socket", "message", "duplex", "server",
                                                 "client", "buffer", "kernel", "packet",  "stream", "latency",
                                                 "the",    "of",     "and",    "a",       "to",     "in"};
    std::size_t i = 0;
    while (i < size) {
        const auto w = words[next() % std::size(words)];
        for (std::size_t j = 0; j < w.size() && i < size; ++j) payload[i++] = w[j];
        if (i < size) payload[i++] = ' ';
    }
    return payload;
}

// One frame with FIN set: a client's, masked with mask_key, or a server's, unmasked.
inline std::string make_ws_frame(std::uint8_t opcode, bool rsv1, std::string_view payload, bool masked = true) {
    const auto mask_bit = static_cast<std::uint8_t>(masked ? 0x80 : 0);
    std::string frame;
    frame.push_back(static_cast<char>(0x80 | (rsv1 ? 0x40 : 0) | opcode));
    const std::uint64_t n = payload.size();
    if (n < 126) {
        frame.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xFFFF) {
        frame.push_back(static_cast<char>(mask_bit | 126));
        frame.push_back(static_cast<char>(n >> 8));
        frame.push_back(static_cast<char>(n & 0xFF));
    } else {
        frame.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) frame.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    if (!masked) return frame.append(payload);
    for (const auto k : mask_key) frame.push_back(static_cast<char>(k));
    for (std::size_t i = 0; i < n; ++i) frame.push_back(static_cast<char>(payload[i] ^ mask_key[i % 4]));
    return frame;
}

// A buffer holding the same frame several times over, so that k frames leave in one write from it.
struct frame_train {
    std::string bytes;
    std::size_t frame_size = 0;

    frame_train() = default;
    frame_train(const std::string& frame, std::size_t copies) : frame_size(frame.size()) {
        bytes.reserve(frame.size() * copies);
        for (std::size_t i = 0; i < copies; ++i) bytes += frame;
    }
};

inline std::size_t train_copies(std::size_t frame_size, int depth) {
    // Enough copies for a whole depth's burst where that stays under 4 MiB; writes past it loop.
    const std::size_t cap = std::max<std::size_t>(1, (std::size_t{4} << 20) / std::max<std::size_t>(frame_size, 1));
    return std::min<std::size_t>(static_cast<std::size_t>(depth), cap);
}

enum class train_sent { all, blocked, failed };

// Sends `pending` bytes of the train's repeated frame, starting `offset` into a frame, in as few sends
// as the train allows; what the socket does not take stays counted for EPOLLOUT to bring back.
inline train_sent send_train(int fd, const frame_train& t, std::uint64_t& pending, std::size_t& offset) {
    while (pending > 0) {
        const std::size_t room = t.bytes.size() - offset;
        const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(pending, room));
        const ssize_t n = ::send(fd, t.bytes.data() + offset, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return train_sent::blocked;
            if (errno == EINTR) continue;
            return train_sent::failed;
        }
        pending -= static_cast<std::uint64_t>(n);
        offset = (offset + static_cast<std::size_t>(n)) % t.frame_size;
        if (static_cast<std::size_t>(n) < len) return train_sent::blocked;
    }
    return train_sent::all;
}

}  // namespace bench
