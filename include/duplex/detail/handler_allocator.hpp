// A per-thread cache of memory for the stream's own completion handlers (the flush it posts, the write it
// starts), so that a message in steady state allocates nothing.
//
// Asio recycles operation memory in a cache of two blocks per purpose and thread, and frees a cached block
// whenever a request does not fit one. A connection's read, its posted flush and its write are three
// operations of different sizes sharing those two blocks, and with many connections on a thread they evict
// each other on every message. Handlers bound to this allocator (asio::bind_allocator) take their memory
// from a cache of their own instead: per thread, a free list per size (multiples of 64 bytes), released
// when the thread ends. It keeps as many blocks of a size as were once in use at the same time (up to
// kept_per_size): a publish to a topic starts a write on every subscriber's socket at once, and a cache of
// a few blocks would send all but a few of those writes to the heap on every message.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <utility>

namespace duplex::detail {

class handler_memory_cache {
public:
    static constexpr std::size_t largest = 1024;         // larger requests go to the heap every time
    static constexpr std::size_t kept_per_size = 4096;   // about a megabyte per thread at the most

    static void* allocate(std::size_t size) {
        auto& cache = this_thread();
        if (size <= largest && !cache.closed) {
            auto& list = cache.lists[list_of(size)];
            if (list.first) {
                free_block* block = list.first;
                list.first = block->next;
                --list.count;
                return block;
            }
        }
        return ::operator new(block_size(size));
    }

    static void deallocate(void* memory, std::size_t size) noexcept {
        auto& cache = this_thread();
        if (size <= largest && !cache.closed) {
            auto& list = cache.lists[list_of(size)];
            if (list.count < kept_per_size) {
                list.first = ::new (memory) free_block{list.first};
                ++list.count;
                return;
            }
        }
        ::operator delete(memory);
    }

private:
    // Blocks come in multiples of 64 bytes, so that a block freed by one operation fits the next of its kind.
    static constexpr std::size_t block_size(std::size_t size) noexcept { return (size + 63) / 64 * 64; }
    static constexpr std::size_t list_of(std::size_t size) noexcept { return size == 0 ? 0 : (size - 1) / 64; }

    struct free_block {
        free_block* next;
    };
    struct free_list {
        free_block* first;
        std::size_t count;
    };
    // Trivially destructible, so it stays usable to the thread's very end: a handler freed after the
    // releaser below ran (say, by an io_context destroyed later) goes straight to the heap.
    struct state {
        std::array<free_list, largest / 64> lists;
        bool closed;
    };
    struct releaser {
        ~releaser() {
            auto& cache = cache_of_this_thread();
            for (auto& list : cache.lists) {
                while (list.first) ::operator delete(std::exchange(list.first, list.first->next));
                list.count = 0;
            }
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
