// duplex::redis::publisher — the connection that PUBLISHes: publish() from any thread queues the
// command and returns at once; one coroutine writes everything queued with one write, and the replies
// (receiver counts) are read back in order. One publisher's messages reach Redis in publish() order.
//
//   auto p = duplex::redis::publisher::create(io.get_executor(), duplex::redis::parse_url(url), {});
//   p->start([](std::error_code ec, const std::string& why) { … });   // the first attempt's outcome
//   p->publish("room:42", payload_parts);                              // false: counted as lost
//
// At most once: a message published while no connection is up, or when max_queued_bytes are queued
// already, is dropped at once; one queued or being written when the connection fails is lost too. All
// are counted (lost()) and logged, at most once per health_check_interval, never on the caller's thread.
#pragma once

#include <duplex/redis/detail/link.hpp>

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace duplex::redis {

class publisher final : public detail::link {
public:
    static std::shared_ptr<publisher> create(asio::any_io_executor executor, endpoint at, options o = {}) {
        return std::shared_ptr<publisher>(new publisher(std::move(executor), std::move(at), std::move(o)));
    }

    // Any thread, never waits: PUBLISH channel <payload_parts laid end to end>. True when queued for the
    // live connection; false when dropped (no connection, or the queue is full), counted in lost().
    bool publish(std::string_view channel, std::span<const std::string_view> payload_parts) {
        bool full = false;
        {
            std::lock_guard lock(mutex_);
            full = pending_.size() >= options_.max_queued_bytes;
            if (accepting_locked() && !full) {
                resp::append_array_header(pending_, 3);
                resp::append_bulk(pending_, "PUBLISH");
                resp::append_bulk(pending_, channel);
                resp::append_bulk(pending_, payload_parts);
                queued_locked(1, 1);
                published_.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
        }
        (full ? lost_queue_full_ : lost_unconnected_).fetch_add(1, std::memory_order_relaxed);
        return false;
    }

    bool publish(std::string_view channel, std::string_view payload) { return publish(channel, std::span(&payload, 1)); }

    // Messages queued for a connection (some of which may be lost after all, see lost()).
    std::uint64_t published() const noexcept { return published_.load(std::memory_order_relaxed); }
    // Messages dropped: published while no connection was up or the queue was full, or queued for a
    // connection that failed before writing them.
    std::uint64_t lost() const noexcept { return lost_unconnected_.load() + lost_queue_full_.load(); }
    // Error replies to PUBLISH.
    std::uint64_t error_replies() const noexcept { return errors_.load(std::memory_order_relaxed); }

private:
    publisher(asio::any_io_executor executor, endpoint at, options o)
        : link(std::move(executor), std::move(at), std::move(o), "publisher") {}

    std::string connected_locked() override { return {}; }

    bool handle_reply(const resp::reply& r) override {
        if (r.is_error()) {
            if (errors_.fetch_add(1, std::memory_order_relaxed) == 0)
                log(log_level::error, "PUBLISH failed: " + std::string(r.top.text));
        }
        return true;
    }

    void disconnected(std::size_t lost_units) override {
        // Queued for the connection that failed: counted as lost now (they may have reached Redis,
        // but nothing says so). Counted among published() already, so moved from there.
        lost_unconnected_.fetch_add(lost_units, std::memory_order_relaxed);
        published_.fetch_sub(lost_units, std::memory_order_relaxed);
        report_losses();
    }

    void tick() override { report_losses(); }

    void report_losses() {
        report(lost_unconnected_, reported_unconnected_, "no connection to Redis");
        report(lost_queue_full_, reported_queue_full_, "the publish queue was full");
    }

    void report(const std::atomic<std::uint64_t>& count, std::uint64_t& reported, const char* why) {
        const auto lost = count.load(std::memory_order_relaxed);
        if (lost == reported) return;
        log(log_level::warning, std::to_string(lost - reported) + " messages lost (" + why + "), " + std::to_string(lost) +
                                    " in all for that reason");
        reported = lost;
    }

    std::atomic<std::uint64_t> published_{0}, lost_unconnected_{0}, lost_queue_full_{0}, errors_{0};
    std::uint64_t reported_unconnected_ = 0, reported_queue_full_ = 0;  // the executor's
};

}  // namespace duplex::redis
