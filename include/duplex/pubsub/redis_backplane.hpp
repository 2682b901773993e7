// duplex::pubsub::redis_backplane — the backplane (backplane.hpp) of a cluster: nodes behind a load
// balancer, joined through Redis pub/sub as SignalR's Redis backplane joins them.
//
//   auto redis = duplex::pubsub::redis_backplane::connect("redis://:password@10.0.0.5:6379");
//   app.topics().attach_backplane(redis);   // throws first if Redis is unreachable or refuses us
//
// Routing (SignalR's): topic T is the Redis channel "<channel_prefix>T" (default "duplex:T"). A node
// SUBSCRIBEs to it while it has a subscriber to T, and UNSUBSCRIBEs when the last one leaves, so Redis
// sends a room's traffic only to the nodes with members in it. A publish is delivered to this node's
// subscribers first, then PUBLISHed; the node drops its own messages when Redis echoes them back (each
// message carries the sending node's random id), so nobody gets a message twice.
//
// Guarantees:
//   - At most once. Redis pub/sub keeps nothing: what is published while Redis is unreachable, or while
//     a node's subscription is being re-established, does not reach the other nodes (it still reaches
//     the publishing node's own subscribers). Such messages are counted (lost()) and logged.
//   - Per publisher and topic, in order on every node: one connection carries a node's PUBLISHes in
//     publish() order, Redis keeps the order per channel, and one connection brings them in.
//   - Never blocking: publish() appends to a queue under a short lock and returns; Redis I/O runs on
//     the backplane's own thread. A queue past options.redis.max_queued_bytes drops (counted).
//
// Failures: both connections reconnect with backoff (100 ms doubling to 2 s by default), and the
// subscribing one SUBSCRIBEs again to every channel with local subscribers. The health check PINGs
// an idle connection every health_check_interval and declares it dead after twice that in silence.
//
// Wire format of a message on the channel: 8 bytes of node id, 1 byte message type (0 text, 1 binary),
// 1 byte message_flags, then the payload.
#pragma once

#include <duplex/pubsub/backplane.hpp>
#include <duplex/redis/publisher.hpp>
#include <duplex/redis/subscriber.hpp>
#include <duplex/redis/url.hpp>

#include <openssl/rand.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace duplex::pubsub {

struct redis_backplane_options {
    // Prepended to each topic to name its channel: one prefix per application sharing a Redis.
    std::string channel_prefix = "duplex:";
    redis::options redis{};
};

class redis_backplane final : public backplane {
public:
    static constexpr std::size_t header_size = 10;

    // Connects both connections and waits for the outcome of their first attempt: throws
    // std::invalid_argument for a malformed URL, and std::runtime_error saying what Redis or the system
    // said (wrong password, unknown database, connection refused, timeout) when either fails.
    static std::shared_ptr<redis_backplane> connect(std::string_view url, redis_backplane_options o = {}) {
        auto at = redis::parse_url(url);
        std::shared_ptr<redis_backplane> b(new redis_backplane(at, std::move(o)));
        b->start();
        return b;
    }

    ~redis_backplane() override {
        publisher_->stop();
        subscriber_->stop();
        work_.reset();
        if (thread_.joinable()) thread_.join();
    }

    void attach(std::weak_ptr<backplane_receiver> receiver) override {
        std::atomic_store(&receiver_, std::make_shared<std::weak_ptr<backplane_receiver>>(std::move(receiver)));
    }
    void topic_opened(std::string_view topic) override { subscriber_->subscribe(channel(topic)); }
    void topic_closed(std::string_view topic) override { subscriber_->unsubscribe(channel(topic)); }

    void publish(std::string_view topic, std::span<const std::byte> payload, message_type type,
                 message_flags flags) override {
        // Built on the stack: no allocation per message here (the queue's string keeps its capacity).
        thread_local std::string name;
        name.assign(options_.channel_prefix).append(topic);
        std::array<char, header_size> header;
        std::memcpy(header.data(), node_id_.data(), node_id_.size());
        header[8] = static_cast<char>(type == message_type::binary ? 1 : 0);
        header[9] = static_cast<char>(static_cast<unsigned>(flags));
        const std::string_view parts[] = {{header.data(), header.size()},
                                          {reinterpret_cast<const char*>(payload.data()), payload.size()}};
        publisher_->publish(name, parts);
    }

    // Diagnostics and tests.
    const redis::publisher& publisher() const noexcept { return *publisher_; }
    const redis::subscriber& subscriber() const noexcept { return *subscriber_; }
    std::uint64_t lost() const noexcept { return publisher_->lost(); }
    std::uint64_t received() const noexcept { return received_.load(std::memory_order_relaxed); }

private:
    redis_backplane(const redis::endpoint& at, redis_backplane_options o) : options_(std::move(o)) {
        if (RAND_bytes(node_id_.data(), static_cast<int>(node_id_.size())) != 1)
            throw std::runtime_error("redis_backplane: no random bytes for the node id");
        publisher_ = redis::publisher::create(io_.get_executor(), at, options_.redis);
        subscriber_ = redis::subscriber::create(io_.get_executor(), at, options_.redis,
                                                [this](std::string_view ch, std::string_view payload) { arrived(ch, payload); });
    }

    void start() {
        std::promise<std::string> published, subscribed;
        const auto outcome = [](std::promise<std::string>& p) {
            return [&p](std::error_code ec, const std::string& detail) {
                if (!ec) p.set_value({});
                else if (detail.empty() || detail.find(ec.message()) != std::string::npos) p.set_value(detail.empty() ? ec.message() : detail);
                else p.set_value(ec.message() + " (" + detail + ")");
            };
        };
        publisher_->start(outcome(published));
        subscriber_->start(outcome(subscribed));
        thread_ = std::thread([this] { io_.run(); });
        std::string why = published.get_future().get();
        if (auto s = subscribed.get_future().get(); why.empty()) why = std::move(s);
        if (!why.empty()) {
            publisher_->stop();
            subscriber_->stop();
            work_.reset();
            thread_.join();
            throw std::runtime_error("cannot use Redis at " + publisher_->where().redacted() + ": " + why);
        }
    }

    std::string channel(std::string_view topic) const { return options_.channel_prefix + std::string(topic); }

    // On the backplane's thread, for every message on a subscribed channel.
    void arrived(std::string_view ch, std::string_view message) {
        if (!ch.starts_with(options_.channel_prefix) || message.size() < header_size) return;
        if (std::memcmp(message.data(), node_id_.data(), node_id_.size()) == 0) return;  // our own, delivered here already
        received_.fetch_add(1, std::memory_order_relaxed);
        const auto holder = std::atomic_load(&receiver_);
        if (!holder) return;
        const auto receiver = holder->lock();
        if (!receiver) return;
        const auto type = message[8] == 1 ? message_type::binary : message_type::text;
        const auto flags = static_cast<message_flags>(static_cast<unsigned char>(message[9]));
        const auto payload = message.substr(header_size);
        receiver->deliver_from_backplane(ch.substr(options_.channel_prefix.size()),
                                         {reinterpret_cast<const std::byte*>(payload.data()), payload.size()}, type, flags);
    }

    redis_backplane_options options_;
    std::array<unsigned char, 8> node_id_{};
    asio::io_context io_{1};
    asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
    std::shared_ptr<redis::publisher> publisher_;
    std::shared_ptr<redis::subscriber> subscriber_;
    std::shared_ptr<std::weak_ptr<backplane_receiver>> receiver_;  // atomic_load / atomic_store
    std::atomic<std::uint64_t> received_{0};
    std::thread thread_;
};

}  // namespace duplex::pubsub
