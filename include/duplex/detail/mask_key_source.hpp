// Unpredictable masking keys for client frames (RFC 6455 §5.3 requires a strong entropy source),
// drawn from OpenSSL's CSPRNG in batches so a small message costs no call into it.
#pragma once

#include <duplex/websocket/mask.hpp>

#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace duplex::detail {

class mask_key_source {
public:
    ws::mask_key next() {
        if (used_ == pool_.size()) refill();
        ws::mask_key key;
        std::memcpy(key.data(), pool_.data() + used_, key.size());
        used_ += key.size();
        return key;
    }

private:
    void refill() {
        if (RAND_bytes(pool_.data(), static_cast<int>(pool_.size())) != 1)
            throw std::runtime_error("RAND_bytes failed to produce WebSocket masking keys");
        used_ = 0;
    }

    std::array<unsigned char, 256> pool_{};
    std::size_t used_ = pool_.size();
};

// One pool per thread: connections share it, so an idle connection holds none of it.
inline ws::mask_key next_mask_key() {
    thread_local mask_key_source source;
    return source.next();
}

}  // namespace duplex::detail
