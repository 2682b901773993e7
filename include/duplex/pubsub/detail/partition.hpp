// duplex::pubsub::detail::partition — the subscribers of one topic that run on one executor, and the
// inbox through which publishers on other executors hand them messages.
//
// A publish hands each partition the message once: on the publisher's own executor it is delivered at
// once, elsewhere it goes into the partition's inbox, and one drain per burst is posted to the
// partition's executor, which delivers everything the inbox holds in order. So a publisher never waits
// for a subscriber, never touches a subscriber's state from the wrong thread, and posts once per
// executor, not once per subscriber. The member list is touched only on the partition's executor; the
// counts publishers read are atomics.
//
// Subscribers on io_context executors (one thread each) share a partition per executor. A strand is an
// executor of its own per connection, so there each subscription is a partition of its own, and a
// publish from elsewhere posts once per subscriber.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/pubsub/detail/member.hpp>
#include <duplex/pubsub/publish_result.hpp>
#include <duplex/websocket/prepared_message.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <typeinfo>
#include <vector>

namespace duplex::pubsub::detail {

// What makes executors share a partition: the io_context behind an io_context executor. Other
// executors (strands above all) share nothing: null.
inline const void* sharing_key(const asio::any_io_executor& executor) noexcept {
    using duplex::detail::io_executor;
    using duplex::detail::tracked_io_executor;
    const auto& type = executor.target_type();
    if (type == typeid(io_executor)) return &executor.target<io_executor>()->context();
    if (type == typeid(tracked_io_executor)) return &executor.target<tracked_io_executor>()->context();
    return nullptr;
}

struct topic;

class partition : public std::enable_shared_from_this<partition> {
public:
    partition(topic& owner, asio::any_io_executor executor, const void* key)
        : owner_(&owner), executor_(std::move(executor)), key_(key) {}
    partition(const partition&) = delete;
    partition& operator=(const partition&) = delete;

    const asio::any_io_executor& executor() const noexcept { return executor_; }
    const void* key() const noexcept { return key_; }
    topic* owner() const noexcept { return owner_; }
    void detach_from_topic() noexcept { owner_ = nullptr; }
    bool empty() const noexcept { return members_.empty(); }
    std::size_t member_count() const noexcept { return member_count_.load(std::memory_order_relaxed); }

    // Members by the window of compressed frames they take, for the publisher to prepare each once.
    ws::window_set windows() const noexcept {
        ws::window_set set = 0;
        for (int w = 8; w <= 15; ++w)
            if (window_members_[static_cast<std::size_t>(w - 8)].load(std::memory_order_relaxed) != 0)
                set |= ws::window_bit(w);
        return set;
    }

    // ---- any thread (a publisher) ----

    // Whether the caller, running on this partition's executor, may deliver the message itself now:
    // only when nothing handed over earlier is still waiting, so that one publisher's messages stay
    // in order.
    bool may_deliver_here() {
        std::lock_guard lock(inbox_mutex_);
        return inbox_.empty() && !drain_posted_;
    }

    // Hands a message over to be delivered on the partition's executor, and says how many members it
    // is expected to reach (those not at their limit now).
    publish_result hand_over(const ws::prepared_message& message, const member* except) {
        {
            std::lock_guard lock(inbox_mutex_);
            inbox_.push_back({message, except});
            if (!drain_posted_) {
                drain_posted_ = true;
                post_drain();
            }
        }
        const std::size_t members = member_count_.load(std::memory_order_relaxed);
        const std::size_t saturated = std::min(members, std::size_t{saturated_count_.load(std::memory_order_relaxed)});
        return {members - saturated, saturated};
    }

    // ---- the partition's executor ----

    // Delivers to every member but `except`.
    publish_result deliver(const ws::prepared_message& message, const member* except) noexcept {
        publish_result result;
        for (auto* m : members_) {
            if (m == except) continue;
            if (m->deliver(message) == send_status::queued) ++result.queued;
            else ++result.skipped;
        }
        return result;
    }

    std::size_t add(member& m) {
        members_.push_back(&m);
        member_count_.fetch_add(1, std::memory_order_relaxed);
        if (m.saturated()) saturated_count_.fetch_add(1, std::memory_order_relaxed);
        if (m.window_bits() != 0)
            window_members_[static_cast<std::size_t>(m.window_bits() - 8)].fetch_add(1, std::memory_order_relaxed);
        return members_.size() - 1;
    }

    // Removes the member at `index`; the last member takes its place (its subscription is updated).
    void remove(std::size_t index) noexcept {
        member& m = *members_[index];
        member_count_.fetch_sub(1, std::memory_order_relaxed);
        if (m.saturated()) saturated_count_.fetch_sub(1, std::memory_order_relaxed);
        if (m.window_bits() != 0)
            window_members_[static_cast<std::size_t>(m.window_bits() - 8)].fetch_sub(1, std::memory_order_relaxed);
        if (index != members_.size() - 1) {
            members_[index] = members_.back();
            for (auto& s : members_[index]->subscriptions_)
                if (s.at.get() == this) s.index = index;
        }
        members_.pop_back();
    }

    void saturation_changed(bool saturated) noexcept {
        if (saturated) saturated_count_.fetch_add(1, std::memory_order_relaxed);
        else saturated_count_.fetch_sub(1, std::memory_order_relaxed);
    }

private:
    struct handed_over {
        ws::prepared_message message;
        const member* except;
    };

    // The drain's post takes its memory from the partition itself (one drain is posted at a time), so
    // a publish allocates nothing per partition. A second request while it is in use (not expected)
    // goes to the heap.
    struct post_memory {
        alignas(std::max_align_t) std::array<std::byte, 256> block;
        bool in_use = false;
    };
    template <class T>
    struct post_allocator {
        using value_type = T;
        post_memory* memory;
        explicit post_allocator(post_memory* m) noexcept : memory(m) {}
        template <class U>
        post_allocator(const post_allocator<U>& other) noexcept : memory(other.memory) {}
        T* allocate(std::size_t n) {
            if (!memory->in_use && n * sizeof(T) <= memory->block.size()) {
                memory->in_use = true;
                return reinterpret_cast<T*>(memory->block.data());
            }
            return static_cast<T*>(::operator new(n * sizeof(T)));
        }
        void deallocate(T* p, std::size_t) noexcept {
            if (reinterpret_cast<std::byte*>(p) == memory->block.data()) memory->in_use = false;
            else ::operator delete(p);
        }
        template <class U>
        bool operator==(const post_allocator<U>& other) const noexcept { return memory == other.memory; }
    };

    // With the inbox's lock held. Posted to the executor's own type where it can be named, so that the
    // post takes the allocator above rather than Asio's type-erased wrapper.
    void post_drain() {
        auto drain = asio::bind_allocator(post_allocator<void>(&post_memory_),
                                          [self = shared_from_this()] { self->drain(); });
        using duplex::detail::io_executor;
        using io_strand = asio::strand<io_executor>;
        const auto& type = executor_.target_type();
        if (type == typeid(io_executor)) asio::post(*executor_.target<io_executor>(), std::move(drain));
        else if (type == typeid(io_strand)) asio::post(*executor_.target<io_strand>(), std::move(drain));
        else asio::post(executor_, std::move(drain));
    }

    void drain() {
        {
            std::lock_guard lock(inbox_mutex_);
            std::swap(inbox_, draining_);
            drain_posted_ = false;
        }
        for (const auto& h : draining_) deliver(h.message, h.except);
        draining_.clear();
    }

    topic* owner_;
    asio::any_io_executor executor_;
    const void* key_;
    std::vector<member*> members_;
    std::atomic<std::uint32_t> member_count_{0}, saturated_count_{0};
    std::array<std::atomic<std::uint32_t>, 8> window_members_{};

    std::mutex inbox_mutex_;
    std::vector<handed_over> inbox_, draining_;  // trade places, so both keep their capacity
    bool drain_posted_ = false;
    post_memory post_memory_;
};

inline void member::set_saturated(bool saturated) noexcept {
    saturated_ = saturated;
    for (auto& s : subscriptions_) s.at->saturation_changed(saturated);
}

}  // namespace duplex::pubsub::detail
