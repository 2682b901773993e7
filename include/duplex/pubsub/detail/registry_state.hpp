// duplex::pubsub::detail::registry_state — the topics of one node: for each topic with subscribers, its
// partitions (partition.hpp); publishing (encode once, hand to each partition once); subscribing and
// unsubscribing members; and the backplane to other nodes.
//
// A topic exists while it has subscribers: the first subscription creates it (and tells the backplane),
// the last one to leave removes it. A publish to a topic without subscribers finds nothing and costs a
// lookup. The lock guards the topic map and each topic's partition list; it is held while publishers
// hand messages over (a push into an inbox each), never while a message is encoded or delivered.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/pubsub/backplane.hpp>
#include <duplex/pubsub/detail/member.hpp>
#include <duplex/pubsub/detail/partition.hpp>
#include <duplex/pubsub/publish_result.hpp>
#include <duplex/websocket/prepared_message.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace duplex::pubsub::detail {

struct topic {
    explicit topic(std::string_view n) : name(n) {}
    std::string name;
    std::vector<std::shared_ptr<partition>> partitions;
};

class registry_state final : public backplane_receiver, public std::enable_shared_from_this<registry_state> {
public:
    registry_state() = default;
    registry_state(const registry_state&) = delete;
    registry_state& operator=(const registry_state&) = delete;

    // ---- members, on their socket's executor ----

    // False when the member was subscribed already.
    bool subscribe(member& m, std::string_view name) {
        if (find(m, name) != m.subscriptions_.size()) return false;
        std::shared_ptr<partition> at;
        {
            std::lock_guard lock(mutex_);
            auto it = topics_.find(name);
            if (it == topics_.end()) {
                it = topics_.emplace(std::string(name), std::make_unique<topic>(name)).first;
                if (backplane_) backplane_->topic_opened(name);
            }
            auto& t = *it->second;
            const void* key = sharing_key(m.executor());
            if (key) {
                const auto shared = std::find_if(t.partitions.begin(), t.partitions.end(),
                                                 [&](const auto& p) { return p->key() == key; });
                if (shared != t.partitions.end()) at = *shared;
            }
            if (!at) {
                at = std::make_shared<partition>(t, m.executor(), key);
                t.partitions.push_back(at);
            }
        }
        const auto index = at->add(m);
        m.subscriptions_.push_back({std::move(at), index});
        return true;
    }

    // False when the member was not subscribed.
    bool unsubscribe(member& m, std::string_view name) {
        const auto i = find(m, name);
        if (i == m.subscriptions_.size()) return false;
        leave(m, i);
        return true;
    }

    // Every subscription of the member, and its interest in the socket's drain: before it goes away.
    void unsubscribe_all(member& m) noexcept {
        while (!m.subscriptions_.empty()) leave(m, m.subscriptions_.size() - 1);
        m.socket().notify_when_drained(nullptr);
    }

    bool is_subscribed(const member& m, std::string_view name) const { return find(m, name) != m.subscriptions_.size(); }

    std::vector<std::string> topics_of(const member& m) const {
        std::vector<std::string> names;
        for (const auto& s : m.subscriptions_) names.push_back(s.at->owner()->name);
        return names;
    }

    // ---- any thread ----

    // Encodes the message once (and compresses it once per window size its subscribers negotiated),
    // then hands it to each partition of the topic, delivering at once to those on the calling thread's
    // executor. `except` (the publisher's own socket, if it asks) gets nothing. With a backplane the
    // message then goes to the other nodes.
    publish_result publish(std::string_view name, std::span<const std::byte> payload, message_type type,
                           message_flags flags, const member* except) {
        std::shared_ptr<backplane> other_nodes;
        const auto result = publish_here(name, payload, type, flags, except, &other_nodes);
        if (other_nodes) other_nodes->publish(name, payload, type, flags);
        return result;
    }

    void deliver_from_backplane(std::string_view name, std::span<const std::byte> payload, message_type type,
                                message_flags flags) override {
        publish_here(name, payload, type, flags, nullptr, nullptr);
    }

    std::size_t subscriber_count(std::string_view name) const {
        std::lock_guard lock(mutex_);
        const auto it = topics_.find(name);
        if (it == topics_.end()) return 0;
        std::size_t count = 0;
        for (const auto& p : it->second->partitions) count += p->member_count();
        return count;
    }

    std::size_t topic_count() const {
        std::lock_guard lock(mutex_);
        return topics_.size();
    }

    // Joins this node to others. The backplane learns the topics subscribed already.
    void attach_backplane(std::shared_ptr<backplane> b) {
        std::lock_guard lock(mutex_);
        if (backplane_) throw std::logic_error("a topic registry takes one backplane");
        backplane_ = std::move(b);
        backplane_->attach(weak_from_this());
        for (const auto& [name, t] : topics_) backplane_->topic_opened(name);
    }

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    static std::size_t find(const member& m, std::string_view name) {
        const auto& subs = m.subscriptions_;
        const auto it = std::find_if(subs.begin(), subs.end(), [&](const auto& s) { return s.at->owner()->name == name; });
        return static_cast<std::size_t>(it - subs.begin());
    }

    void leave(member& m, std::size_t i) noexcept {
        auto s = std::move(m.subscriptions_[i]);
        if (i != m.subscriptions_.size() - 1) m.subscriptions_[i] = std::move(m.subscriptions_.back());
        m.subscriptions_.pop_back();
        s.at->remove(s.index);
        if (s.at->empty()) close_partition(*s.at);
    }

    // A partition whose last member left leaves its topic; a topic whose last partition left goes.
    void close_partition(partition& p) noexcept {
        std::lock_guard lock(mutex_);
        auto* t = p.owner();
        if (!t) return;
        std::erase_if(t->partitions, [&](const auto& q) { return q.get() == &p; });
        p.detach_from_topic();
        if (!t->partitions.empty()) return;
        if (backplane_) {
            try {
                backplane_->topic_closed(t->name);
            } catch (...) {  // the backplane's trouble; the topic goes here all the same
            }
        }
        topics_.erase(topics_.find(t->name));
    }

    publish_result publish_here(std::string_view name, std::span<const std::byte> payload, message_type type,
                                message_flags flags, const member* except, std::shared_ptr<backplane>* other_nodes) {
        ws::window_set windows = 0;
        {
            std::lock_guard lock(mutex_);
            if (other_nodes) *other_nodes = backplane_;
            const auto it = topics_.find(name);
            if (it == topics_.end()) return {};
            for (const auto& p : it->second->partitions) windows |= p->windows();
        }
        // Encoded (and compressed) without the lock; a subscriber that joined meanwhile with a window
        // nobody else has gets the plain frame.
        const ws::prepared_message message(payload, type, flags, windows);
        publish_result result;
        thread_local std::vector<partition*> here;
        here.clear();
        {
            std::lock_guard lock(mutex_);
            const auto it = topics_.find(name);
            if (it == topics_.end()) return {};
            for (const auto& p : it->second->partitions) {
                if (duplex::detail::running_in(p->executor()) && p->may_deliver_here()) here.push_back(p.get());
                else result += p->hand_over(message, except);
            }
        }
        // Partitions on this executor only leave their topic on it, so they outlive this loop.
        for (auto* p : here) result += p->deliver(message, except);
        here.clear();
        return result;
    }

    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::unique_ptr<topic>, string_hash, std::equal_to<>> topics_;
    std::shared_ptr<backplane> backplane_;
};

}  // namespace duplex::pubsub::detail
