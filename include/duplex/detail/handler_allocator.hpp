// A per-thread cache of memory for the stream's own completion handlers (the flush it posts, the write it
// starts), so that a message in steady state allocates nothing.
//
// Asio recycles operation memory in a cache of two blocks per purpose and thread, and frees a cached block
// whenever a request does not fit one. A connection's read, its posted flush and its write are three
// operations of different sizes sharing those two blocks, and with many connections on a thread they evict
// each other on every message. Handlers bound to this allocator (asio::bind_allocator) take their memory
// from a cache of their own instead: a few blocks per thread, best fit, released when the thread ends.
#pragma once

#include <array>
#include <cstddef>
#include <new>

namespace duplex::detail {

class handler_memory_cache {
public:
    static constexpr std::size_t slots = 8;
    static constexpr std::size_t largest = 1024;  // larger requests go to the heap every time

    static void* allocate(std::size_t size) {
        auto& cache = this_thread();
        if (size <= largest && !cache.closed) {
            std::size_t best = slots;
            for (std::size_t i = 0; i < slots; ++i) {
                const auto& b = cache.blocks[i];
                if (b.memory && b.size >= size && (best == slots || b.size < cache.blocks[best].size)) best = i;
            }
            if (best != slots) {
                void* memory = cache.blocks[best].memory;
                cache.blocks[best] = {};
                return memory;
            }
        }
        return ::operator new(block_size(size));
    }

    static void deallocate(void* memory, std::size_t size) noexcept {
        auto& cache = this_thread();
        if (size <= largest && !cache.closed) {
            for (auto& b : cache.blocks) {
                if (!b.memory) {
                    b = {memory, block_size(size)};
                    return;
                }
            }
        }
        ::operator delete(memory);
    }

private:
    // Blocks come in multiples of 64 bytes, so that a block freed by one operation fits the next of its kind.
    static constexpr std::size_t block_size(std::size_t size) noexcept { return (size + 63) / 64 * 64; }

    struct block {
        void* memory;
        std::size_t size;
    };
    // Trivially destructible, so it stays usable to the thread's very end: a handler freed after the
    // releaser below ran (say, by an io_context destroyed later) goes straight to the heap.
    struct state {
        std::array<block, slots> blocks;
        bool closed;
    };
    struct releaser {
        ~releaser() {
            auto& cache = cache_of_this_thread();
            for (auto& b : cache.blocks) ::operator delete(b.memory);
            cache.blocks = {};
            cache.closed = true;
        }
    };

    static state& cache_of_this_thread() noexcept {
        thread_local state cache{};
        return cache;
    }
    static state& this_thread() noexcept {
        thread_local releaser release_at_thread_end;
        (void)release_at_thread_end;
        return cache_of_this_thread();
    }
};

// The standard allocator interface over handler_memory_cache, for asio::bind_allocator.
template <class T>
struct handler_allocator {
    using value_type = T;

    handler_allocator() noexcept = default;
    template <class U>
    handler_allocator(const handler_allocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        return static_cast<T*>(handler_memory_cache::allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { handler_memory_cache::deallocate(p, n * sizeof(T)); }

    template <class U>
    bool operator==(const handler_allocator<U>&) const noexcept { return true; }
};

}  // namespace duplex::detail
