// duplex::pubsub::subscriber — pub/sub for a duplex::websocket of the ASP.NET-shaped API: the socket's
// subscriptions, its backpressure limit and its on_drain, for as long as the subscriber lives.
//
//   auto ws = co_await ctx.websockets.accept_websocket();
//   duplex::pubsub::subscriber member(app.topics(), ws);        // unsubscribes everything when it goes
//   member.subscribe("room/42");
//   ... receive loop; app.topics().publish("room/42", text) from anywhere ...
//
// One subscriber per socket. Its operations belong on the socket's executor, where a handler of the app
// host runs; from elsewhere they are carried there and take effect shortly after they return.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/pubsub/detail/member.hpp>
#include <duplex/pubsub/topic_registry.hpp>
#include <duplex/websocket/backpressure.hpp>
#include <duplex/websocket/websocket.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::pubsub {

struct subscriber_options {
    backpressure_options backpressure{};
    // Called on the socket's executor when its send queue has emptied after it reached its limit.
    std::function<void()> on_drain{};
};

class subscriber {
public:
    subscriber(const topic_registry& registry, const websocket& ws, subscriber_options options = {})
        : state_(std::make_shared<state>(registry, ws, std::move(options))) {}
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;
    ~subscriber() {
        on_executor([](state& s) { s.registry->unsubscribe_all(s); });
    }

    void subscribe(std::string_view topic) {
        on_executor([t = std::string(topic)](state& s) { s.registry->subscribe(s, t); });
    }
    void unsubscribe(std::string_view topic) {
        on_executor([t = std::string(topic)](state& s) { s.registry->unsubscribe(s, t); });
    }
    // On the socket's executor only (elsewhere the answer could be stale before it returns).
    bool is_subscribed(std::string_view topic) const {
        require_executor();
        return state_->registry->is_subscribed(*state_, topic);
    }
    std::vector<std::string> topics() const {
        require_executor();
        return state_->registry->topics_of(*state_);
    }

    // Publishes to everyone subscribed to `topic` but this socket (SignalR's OthersInGroup). From the
    // socket's executor only, like is_subscribed.
    publish_result publish_to_others(std::string_view topic, asio::const_buffer data, message_type type,
                                     message_flags flags = message_flags::none) const {
        require_executor();
        return state_->registry->publish(topic, {static_cast<const std::byte*>(data.data()), data.size()}, type, flags,
                                         state_.get());
    }

    // Messages dropped for this socket at its backpressure limit so far. From any thread.
    std::uint64_t dropped() const noexcept { return state_->dropped(); }

private:
    struct state final : detail::member {
        state(const topic_registry& r, const websocket& ws, subscriber_options options)
            : member(duplex::detail::websocket_access::interface_of(ws), options.backpressure),
              registry(r.state()),
              drain(std::move(options.on_drain)) {}
        void on_drain() override {
            if (drain) drain();
        }
        std::shared_ptr<detail::registry_state> registry;
        std::function<void()> drain;
    };

    template <class F>
    void on_executor(F f) {
        const auto executor = state_->executor();
        if (duplex::detail::running_in(executor)) {
            f(*state_);
            return;
        }
        asio::post(executor, [s = state_, f = std::move(f)]() mutable { f(*s); });
    }
    void require_executor() const {
        if (!duplex::detail::running_in(state_->executor()))
            throw std::logic_error("call this on the socket's executor");
    }

    std::shared_ptr<state> state_;
};

}  // namespace duplex::pubsub
