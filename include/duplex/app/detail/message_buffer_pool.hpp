// The buffers the message-driven API receives messages into: taken from a per-thread pool when a
// message's data has arrived and given back once it is handled, so that a quiet connection holds none
// and a busy thread reuses a few instead of allocating one per message (or keeping one per connection).
#pragma once

#include <array>
#include <cstddef>
#include <utility>
#include <vector>

namespace duplex::detail {

class message_buffer_pool {
public:
    // Buffers kept per thread, and the largest kept (a buffer grown past it for one large message is
    // freed when it comes back): at most 512 KiB per thread stay behind after a burst of large messages
    // (with 16 buffers of up to 1 MiB, the fault storm's 256 KiB messages left 4 MiB per thread).
    static constexpr std::size_t kept = 8;
    static constexpr std::size_t largest_kept = 64 * 1024;

    // A buffer of at least `size` bytes (its contents are whatever it held before).
    static std::vector<std::byte> take(std::size_t size) {
        auto& pool = this_thread();
        std::vector<std::byte> buffer;
        if (pool.count != 0) buffer = std::move(pool.buffers[--pool.count]);
        if (buffer.size() < size) buffer.resize(size);
        return buffer;
    }

    static void give_back(std::vector<std::byte> buffer) noexcept {
        auto& pool = this_thread();
        if (buffer.capacity() == 0 || buffer.capacity() > largest_kept || pool.count == kept) return;
        pool.buffers[pool.count++] = std::move(buffer);
    }

private:
    struct pool {
        std::array<std::vector<std::byte>, kept> buffers;
        std::size_t count = 0;
    };
    static pool& this_thread() noexcept {
        thread_local pool p;
        return p;
    }
};

}  // namespace duplex::detail
