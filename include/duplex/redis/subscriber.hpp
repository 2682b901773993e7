// duplex::redis::subscriber — the connection that SUBSCRIBEs: channels are added and removed from any
// thread, and every message on them goes to a handler on the connection's executor, as views into the
// read buffer (no copy, no allocation per message).
//
//   auto s = duplex::redis::subscriber::create(io.get_executor(), duplex::redis::parse_url(url), {},
//       [](std::string_view channel, std::string_view payload) { … });
//   s->start(on_first_attempt);
//   s->subscribe("room:42");  // any thread; kept across reconnections
//
// The set of channels is this object's: after a reconnection it SUBSCRIBEs to all of them again in one
// command. What was published while no connection was up is lost (Redis pub/sub keeps nothing).
// PING while subscribed is answered ["pong", ""] in RESP2, which the health check accepts.
#pragma once

#include <duplex/redis/detail/link.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

namespace duplex::redis {

class subscriber final : public detail::link {
public:
    using message_handler = std::function<void(std::string_view channel, std::string_view payload)>;

    static std::shared_ptr<subscriber> create(asio::any_io_executor executor, endpoint at, options o,
                                              message_handler on_message) {
        return std::shared_ptr<subscriber>(
            new subscriber(std::move(executor), std::move(at), std::move(o), std::move(on_message)));
    }

    // Any thread; never waits. Does nothing for a channel already in the set / not in it.
    void subscribe(std::string_view channel) {
        std::lock_guard lock(mutex_);
        if (!channels_.emplace(channel).second) return;
        if (accepting_locked()) {
            resp::append_command(pending_, "SUBSCRIBE", channel);
            queued_locked(1, 0);
        }
    }
    void unsubscribe(std::string_view channel) {
        std::lock_guard lock(mutex_);
        const auto it = channels_.find(channel);
        if (it == channels_.end()) return;
        channels_.erase(it);
        if (accepting_locked()) {
            resp::append_command(pending_, "UNSUBSCRIBE", channel);
            queued_locked(1, 0);
        }
    }

    // Channels in the set.
    std::size_t channel_count() {
        std::lock_guard lock(mutex_);
        return channels_.size();
    }
    // Redis' count of this connection's channels, from its last (un)subscribe confirmation (0 while
    // no connection is up).
    std::size_t confirmed_count() const noexcept { return confirmed_.load(std::memory_order_relaxed); }
    std::uint64_t messages_received() const noexcept { return received_.load(std::memory_order_relaxed); }

private:
    subscriber(asio::any_io_executor executor, endpoint at, options o, message_handler on_message)
        : link(std::move(executor), std::move(at), std::move(o), "subscriber"), on_message_(std::move(on_message)) {}

    std::string connected_locked() override {
        if (channels_.empty()) return {};
        resp::append_array_header(pending_, channels_.size() + 1);
        resp::append_bulk(pending_, "SUBSCRIBE");
        for (const auto& c : channels_) resp::append_bulk(pending_, c);
        queued_locked(channels_.size(), 0);
        return "; subscribing to " + std::to_string(channels_.size()) + (channels_.size() == 1 ? " channel" : " channels");
    }

    bool handle_reply(const resp::reply& r) override {
        if (r.top.type == resp::kind::array && r.element_count >= 3) {
            const auto& kind = r.elements[0];
            if (kind.is("message")) {
                received_.fetch_add(1, std::memory_order_relaxed);
                on_message_(r.text(1), r.text(2));
                return false;
            }
            if (kind.is("subscribe") || kind.is("unsubscribe")) {
                confirmed_.store(static_cast<std::size_t>(r.elements[2].integer), std::memory_order_relaxed);
                return true;
            }
            return !kind.is("pmessage");
        }
        if (r.is_error()) log(log_level::error, "error reply: " + std::string(r.top.text));
        return true;  // ["pong", ""] (2 elements), +PONG before any SUBSCRIBE, errors
    }

    void disconnected(std::size_t) override { confirmed_.store(0, std::memory_order_relaxed); }

    message_handler on_message_;
    std::set<std::string, std::less<>> channels_;  // guarded by mutex_
    std::atomic<std::size_t> confirmed_{0};
    std::atomic<std::uint64_t> received_{0};
};

}  // namespace duplex::redis
