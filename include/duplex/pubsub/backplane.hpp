// duplex::pubsub::backplane — what joins the topic registries of several nodes (processes behind a load
// balancer), as SignalR's backplanes and Phoenix.PubSub's adapters do: each node publishes its messages
// to the others through it, and tells it which topics have local subscribers, so that a node receives
// only what it can deliver. Delivery is at most once: a message the backplane loses is lost.
//
// A registry with a backplane delivers a local publish to its own subscribers first, then gives it to
// the backplane; a message from another node is delivered locally and not published again. One
// publisher's messages to one topic reach every node's subscribers in publish order as long as the
// backplane keeps that order (Redis pub/sub does, per channel).
//
// in_process_backplane.hpp joins registries within one process (tests, and several registries in one
// program); a Redis backplane implements the same interface.
#pragma once

#include <duplex/websocket/message.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace duplex::pubsub {

// Where a backplane delivers messages from other nodes: the registry of this node.
class backplane_receiver {
public:
    // From any thread; delivers to this node's subscribers of `topic` without waiting for any of them.
    virtual void deliver_from_backplane(std::string_view topic, std::span<const std::byte> payload, message_type type,
                                        message_flags flags) = 0;

protected:
    ~backplane_receiver() = default;
};

class backplane {
public:
    virtual ~backplane() = default;

    // The registry this backplane delivers to (set once, by topic_registry::attach_backplane). Held
    // weakly: a registry that is gone receives nothing.
    virtual void attach(std::weak_ptr<backplane_receiver> receiver) = 0;
    // This node has subscribers to `topic` from now on / has none any more. Called in order, with the
    // registry's lock held: implementations must not call back into the registry from them (queue the
    // work instead).
    virtual void topic_opened(std::string_view topic) = 0;
    virtual void topic_closed(std::string_view topic) = 0;
    // A message published on this node, for the other nodes (not delivered back to this one). Called
    // from the publishing thread, without the registry's lock; must not wait for other nodes.
    virtual void publish(std::string_view topic, std::span<const std::byte> payload, message_type type,
                         message_flags flags) = 0;
};

}  // namespace duplex::pubsub
