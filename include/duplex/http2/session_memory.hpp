// nghttp2's memory (nghttp2_mem) with its small blocks recycled per thread: nghttp2 allocates an item for
// every frame it queues by itself — a WINDOW_UPDATE each time half a window has been given back, which on
// a busy stream is every few messages — and frees it once written, so through malloc a steady stream of
// messages would allocate. Only a few blocks of each size are kept per thread (what such items need at
// once): the rest of nghttp2's memory (streams, header fields, HPACK tables) is as large as the peak
// number of streams, and keeping it after the peak would hold memory no connection needs (the HTTP/2
// fault storm checks that it goes back). Each block carries its size in front of it, since nghttp2's free
// and realloc do not pass it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace duplex::http2 {

class session_memory {
public:
    static nghttp2_mem* get() noexcept {
        static nghttp2_mem mem{nullptr, &allocate, &release, &allocate_zeroed, &reallocate};
        return &mem;
    }

private:
    static constexpr std::size_t header = alignof(std::max_align_t);  // the size, aligned for what follows
    static constexpr std::size_t granule = 64;                         // blocks come in multiples of this
    static constexpr std::size_t largest = 512;                        // larger blocks are never kept
    static constexpr std::size_t kept_per_size = 16;

    struct free_block {
        free_block* next;
    };
    struct free_list {
        free_block* first;
        std::size_t count;
    };
    // Trivially destructible, so that it stays usable to the thread's very end: a block freed after the
    // releaser below ran (a session deleted later in the thread's exit) goes straight to the heap.
    struct lists {
        std::array<free_list, largest / granule> by_size;
        bool closed;
    };
    struct releaser {
        ~releaser() {
            auto& kept = lists_of_this_thread();
            for (auto& list : kept.by_size) {
                while (list.first) std::free(std::exchange(list.first, list.first->next));
                list.count = 0;
            }
            kept.closed = true;
        }
    };
    static lists& lists_of_this_thread() noexcept {
        thread_local lists kept{};
        return kept;
    }
    static lists& this_thread() noexcept {
        thread_local releaser release_at_thread_end;
        (void)release_at_thread_end;
        return lists_of_this_thread();
    }

    // The whole block (header included) is rounded up to the granule, so that a block freed by one item
    // fits the next of its kind.
    static std::size_t block_size(std::size_t size) noexcept { return (header + size + granule - 1) / granule * granule; }
    static std::size_t& size_of(void* p) noexcept {
        return *reinterpret_cast<std::size_t*>(static_cast<std::byte*>(p) - header);
    }

    static void* allocate(std::size_t size, void*) noexcept {
        const std::size_t whole = block_size(size);
        void* block = nullptr;
        if (auto& kept = this_thread(); whole <= largest && !kept.closed) {
            auto& list = kept.by_size[whole / granule - 1];
            if (list.first) {
                block = std::exchange(list.first, list.first->next);
                --list.count;
            }
        }
        if (!block) block = std::malloc(whole);
        if (!block) return nullptr;  // nghttp2 answers NGHTTP2_ERR_NOMEM
        *static_cast<std::size_t*>(block) = size;
        return static_cast<std::byte*>(block) + header;
    }
    static void release(void* p, void*) noexcept {
        if (!p) return;
        const std::size_t whole = block_size(size_of(p));
        void* block = static_cast<std::byte*>(p) - header;
        if (auto& kept = this_thread(); whole <= largest && !kept.closed) {
            auto& list = kept.by_size[whole / granule - 1];
            if (list.count < kept_per_size) {
                list.first = ::new (block) free_block{list.first};
                ++list.count;
                return;
            }
        }
        std::free(block);
    }
    static void* allocate_zeroed(std::size_t count, std::size_t size, void*) noexcept {
        if (size != 0 && count > static_cast<std::size_t>(-1) / size) return nullptr;
        void* p = allocate(count * size, nullptr);
        if (p) std::memset(p, 0, count * size);
        return p;
    }
    // As C's realloc: a null pointer allocates, and the contents are kept up to the smaller size.
    static void* reallocate(void* p, std::size_t size, void*) noexcept {
        if (!p) return allocate(size, nullptr);
        void* moved = allocate(size, nullptr);
        if (!moved) return nullptr;
        std::memcpy(moved, p, std::min(size, size_of(p)));
        release(p, nullptr);
        return moved;
    }
};

}  // namespace duplex::http2
