// duplex::pubsub::topic_registry — topics and publish (uWebSockets' publish, SignalR's groups): sockets
// subscribe to topics by name, and publish(topic, data) sends a message to every subscriber.
//
//   duplex::pubsub::topic_registry topics;                      // or app.topics()
//   topics.publish("room/42", "hello");                         // from any thread
//
// Sockets subscribe through the message-driven API (websocket_session::subscribe) or, for a
// duplex::websocket, through a pubsub::subscriber. Each message is encoded once, whatever the number of
// subscribers, and every subscriber's send queue holds a reference to the same bytes (compressed once
// per window size for those that negotiated permessage-deflate). A publisher never waits for a
// subscriber: one at its backpressure limit drops the message (counted) or is closed with 1008
// (backpressure_options). Each subscriber gets one publisher's messages to one topic in publish order.
//
// A cheap handle: copies share one registry, which lives as long as any copy or any subscriber.
#pragma once

#include <duplex/pubsub/backplane.hpp>
#include <duplex/pubsub/detail/registry_state.hpp>
#include <duplex/pubsub/publish_result.hpp>
#include <duplex/websocket/message.hpp>

#include <memory>
#include <span>
#include <string_view>

namespace duplex::pubsub {

class topic_registry {
public:
    topic_registry() : state_(std::make_shared<detail::registry_state>()) {}

    // From any thread, without waiting for any subscriber. A text message must be valid UTF-8 (the
    // caller vouches for it, as for send). With a backplane the message goes to the other nodes too.
    publish_result publish(std::string_view topic, asio::const_buffer data, message_type type,
                           message_flags flags = message_flags::none) const {
        return state_->publish(topic, bytes_of(data), type, flags, nullptr);
    }
    publish_result publish(std::string_view topic, std::string_view text,
                           message_flags flags = message_flags::none) const {
        return publish(topic, asio::buffer(text), message_type::text, flags);
    }

    // This node's subscribers of `topic` (0 when it has none: the topic does not exist).
    std::size_t subscriber_count(std::string_view topic) const { return state_->subscriber_count(topic); }
    // Topics with at least one subscriber on this node.
    std::size_t topic_count() const { return state_->topic_count(); }

    // Joins this registry to other nodes' through `b` (backplane.hpp); once.
    void attach_backplane(std::shared_ptr<backplane> b) const { state_->attach_backplane(std::move(b)); }

    const std::shared_ptr<detail::registry_state>& state() const noexcept { return state_; }

private:
    static std::span<const std::byte> bytes_of(asio::const_buffer data) noexcept {
        return {static_cast<const std::byte*>(data.data()), data.size()};
    }

    std::shared_ptr<detail::registry_state> state_;
};

}  // namespace duplex::pubsub
