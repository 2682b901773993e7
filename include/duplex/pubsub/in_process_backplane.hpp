// duplex::pubsub::in_process_backplane — a backplane between registries of one process: each registry
// that joins becomes a node, and a message published on one node reaches the subscribers of the others
// (only the nodes with subscribers to its topic, as SignalR's Redis backplane routes by channel).
//
//   auto hub = std::make_shared<duplex::pubsub::in_process_backplane>();
//   node_a.attach_backplane(hub->node());
//   node_b.attach_backplane(hub->node());
//
// It stands where a Redis backplane stands in a cluster, with the same contract (backplane.hpp), so
// what works across these nodes works across processes with one that keeps per-channel order.
#pragma once

#include <duplex/pubsub/backplane.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::pubsub {

class in_process_backplane : public std::enable_shared_from_this<in_process_backplane> {
public:
    // A new node's end of the backplane, for topic_registry::attach_backplane.
    std::shared_ptr<backplane> node() { return std::make_shared<endpoint>(shared_from_this()); }

    // Nodes with subscribers to `topic` (for tests and diagnostics).
    std::size_t nodes_subscribed(std::string_view topic) const {
        std::lock_guard lock(mutex_);
        const auto it = topics_.find(topic);
        return it == topics_.end() ? 0 : it->second.size();
    }

private:
    class endpoint;

    // Every other node with subscribers to `topic` gets the message. The list is copied under the lock
    // and the nodes are called without it, so a node that publishes or subscribes meanwhile never
    // waits on another node's lock while holding this one.
    void route(const endpoint* from, std::string_view topic, std::span<const std::byte> payload, message_type type,
               message_flags flags) {
        std::vector<std::shared_ptr<backplane_receiver>> receivers;
        {
            std::lock_guard lock(mutex_);
            const auto it = topics_.find(topic);
            if (it == topics_.end()) return;
            for (const auto* node : it->second)
                if (node != from)
                    if (auto r = node->receiver.lock()) receivers.push_back(std::move(r));
        }
        for (const auto& r : receivers) r->deliver_from_backplane(topic, payload, type, flags);
    }

    void opened(const endpoint* node, std::string_view topic) {
        std::lock_guard lock(mutex_);
        topics_[std::string(topic)].push_back(node);
    }
    void closed(const endpoint* node, std::string_view topic) {
        std::lock_guard lock(mutex_);
        const auto it = topics_.find(topic);
        if (it == topics_.end()) return;
        std::erase(it->second, node);
        if (it->second.empty()) topics_.erase(it);
    }
    void left(const endpoint* node) {
        std::lock_guard lock(mutex_);
        for (auto it = topics_.begin(); it != topics_.end();) {
            std::erase(it->second, node);
            it = it->second.empty() ? topics_.erase(it) : std::next(it);
        }
    }

    class endpoint final : public backplane {
    public:
        explicit endpoint(std::shared_ptr<in_process_backplane> hub) : hub_(std::move(hub)) {}
        ~endpoint() override { hub_->left(this); }

        void attach(std::weak_ptr<backplane_receiver> r) override { receiver = std::move(r); }
        void topic_opened(std::string_view topic) override { hub_->opened(this, topic); }
        void topic_closed(std::string_view topic) override { hub_->closed(this, topic); }
        void publish(std::string_view topic, std::span<const std::byte> payload, message_type type,
                     message_flags flags) override {
            hub_->route(this, topic, payload, type, flags);
        }

        std::weak_ptr<backplane_receiver> receiver;

    private:
        std::shared_ptr<in_process_backplane> hub_;
    };

    mutable std::mutex mutex_;
    std::map<std::string, std::vector<const endpoint*>, std::less<>> topics_;
};

}  // namespace duplex::pubsub
