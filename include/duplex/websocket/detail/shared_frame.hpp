// duplex::ws::detail::shared_frame — bytes encoded once and written to many connections: an immutable,
// reference-counted block (pub/sub's frames, which every subscriber's send queue holds a reference to).
// Server frames are not masked, so one block serves every receiver, before TLS.
//
// The blocks come from a small per-thread cache by size class and go back to the cache of whichever
// thread drops the last reference; past what that cache keeps they go to a process-wide pool (under a
// mutex), where a thread whose cache is empty finds them. A publisher on another thread than its
// subscribers takes every block on its thread and the subscribers' thread frees every one: without the
// pool, each publish would allocate. So publishing in steady state calls the allocator for none of them.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <span>
#include <utility>

namespace duplex::ws::detail {

// Blocks of 64 B to 64 KiB in power-of-two classes, a few of each kept per thread; larger ones (and
// those past the few) go to and from the heap.
class frame_block_cache {
public:
    static constexpr std::size_t smallest = 64;
    static constexpr std::size_t classes = 11;  // 64 B … 64 KiB
    static constexpr std::size_t per_class = 8;

    static std::size_t block_size(std::size_t size) noexcept {
        return size <= smallest ? smallest : std::bit_ceil(size);
    }

    static constexpr std::size_t pooled_per_class = 256;  // in the process-wide pool

    static void* allocate(std::size_t block) {
        if (block > largest()) return ::operator new(block);
        if (auto* cache = this_thread()) {
            auto& c = cache->classes_[class_of(block)];
            if (c.count != 0) return c.blocks[--c.count];
        }
        if (void* pooled = shared_pool().take(class_of(block))) return pooled;
        return ::operator new(block);
    }

    static void deallocate(void* memory, std::size_t block) noexcept {
        if (block <= largest()) {
            if (auto* cache = this_thread()) {
                auto& c = cache->classes_[class_of(block)];
                if (c.count != per_class) {
                    c.blocks[c.count++] = memory;
                    return;
                }
            }
            if (shared_pool().give(class_of(block), memory)) return;
        }
        ::operator delete(memory);
    }

    frame_block_cache() = default;
    frame_block_cache(const frame_block_cache&) = delete;
    frame_block_cache& operator=(const frame_block_cache&) = delete;
    ~frame_block_cache() {
        for (auto& c : classes_)
            for (std::size_t i = 0; i < c.count; ++i) ::operator delete(c.blocks[i]);
        gone_ = true;
    }

private:
    static constexpr std::size_t largest() noexcept { return smallest << (classes - 1); }
    static std::size_t class_of(std::size_t block) noexcept {
        return static_cast<std::size_t>(std::countr_zero(block) - std::countr_zero(smallest));
    }
    // Null while the thread is exiting and its cache is gone: blocks freed then go to the heap.
    static frame_block_cache* this_thread() noexcept {
        if (gone_) return nullptr;
        thread_local frame_block_cache cache;
        return &cache;
    }

    struct size_class {
        std::array<void*, per_class> blocks{};
        std::size_t count = 0;
    };
    // Lives as long as the program (never destroyed: threads may free blocks while it exits).
    class pool {
    public:
        void* take(std::size_t size_class) noexcept {
            std::lock_guard lock(mutex_);
            auto& c = classes_[size_class];
            return c.count == 0 ? nullptr : c.blocks[--c.count];
        }
        bool give(std::size_t size_class, void* memory) noexcept {
            std::lock_guard lock(mutex_);
            auto& c = classes_[size_class];
            if (c.count == pooled_per_class) return false;
            c.blocks[c.count++] = memory;
            return true;
        }

    private:
        struct pooled_class {
            std::array<void*, pooled_per_class> blocks{};
            std::size_t count = 0;
        };
        std::mutex mutex_;
        std::array<pooled_class, classes> classes_{};
    };
    static pool& shared_pool() noexcept {
        static pool* const instance = new pool;
        return *instance;
    }
    std::array<size_class, classes> classes_{};
    static inline thread_local bool gone_ = false;
};

class shared_frame;

// An owning reference to a shared_frame (intrusive: the count lives in the block).
class shared_frame_ptr {
public:
    shared_frame_ptr() noexcept = default;
    explicit shared_frame_ptr(shared_frame* adopted) noexcept : frame_(adopted) {}
    shared_frame_ptr(const shared_frame_ptr& other) noexcept;
    shared_frame_ptr(shared_frame_ptr&& other) noexcept : frame_(std::exchange(other.frame_, nullptr)) {}
    shared_frame_ptr& operator=(shared_frame_ptr other) noexcept {
        std::swap(frame_, other.frame_);
        return *this;
    }
    ~shared_frame_ptr();

    shared_frame* get() const noexcept { return frame_; }
    shared_frame& operator*() const noexcept { return *frame_; }
    shared_frame* operator->() const noexcept { return frame_; }
    explicit operator bool() const noexcept { return frame_ != nullptr; }

private:
    shared_frame* frame_ = nullptr;
};

class shared_frame {
public:
    // A block for `size` bytes, not initialized; the caller writes them before sharing it.
    static shared_frame_ptr make(std::size_t size) {
        const auto block = frame_block_cache::block_size(sizeof(shared_frame) + size);
        void* memory = frame_block_cache::allocate(block);
        return shared_frame_ptr(::new (memory) shared_frame(size, block));
    }

    std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
    const std::byte* data() const noexcept { return reinterpret_cast<const std::byte*>(this + 1); }
    std::size_t size() const noexcept { return size_; }
    std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }

    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
        const auto block = block_;
        this->~shared_frame();
        frame_block_cache::deallocate(this, block);
    }

    shared_frame(const shared_frame&) = delete;
    shared_frame& operator=(const shared_frame&) = delete;

private:
    shared_frame(std::size_t size, std::size_t block) noexcept : size_(size), block_(block) {}
    ~shared_frame() = default;

    std::atomic<std::uint32_t> refs_{1};
    std::size_t size_;
    std::size_t block_;
};


inline shared_frame_ptr::shared_frame_ptr(const shared_frame_ptr& other) noexcept : frame_(other.frame_) {
    if (frame_) frame_->add_ref();
}
inline shared_frame_ptr::~shared_frame_ptr() {
    if (frame_) frame_->release();
}

}  // namespace duplex::ws::detail
