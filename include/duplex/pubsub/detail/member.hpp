// duplex::pubsub::detail::member — one socket as pub/sub sees it: the socket, its backpressure limit,
// the partitions of the topics it is subscribed to, and whether it is at its limit (saturated). The
// message-driven API's session is a member; pubsub::subscriber gives one to a duplex::websocket.
//
// Everything here happens on the socket's executor, except dropped(), which any thread may read.
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/backpressure.hpp>
#include <duplex/websocket/prepared_message.hpp>
#include <duplex/websocket/websocket.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace duplex::pubsub::detail {

class partition;
class registry_state;

class member : public duplex::detail::drain_listener {
public:
    member(std::shared_ptr<duplex::detail::websocket_interface> socket, backpressure_options limit)
        : socket_(std::move(socket)),
          limit_(limit),
          window_bits_(socket_->prepared_window_bits()) {}
    member(const member&) = delete;
    member& operator=(const member&) = delete;

    // A message for this socket, queued unless it is at its limit (then dropped, or the socket failed
    // with 1008, as the policy says) or closing.
    send_status deliver(const ws::prepared_message& message) noexcept {
        send_status status = send_status::closed;
        try {
            status = socket_->send_prepared(message, limit_);
        } catch (...) {  // a socket that cannot take it (e.g. its send queue overflowed) is closing
        }
        if (status == send_status::dropped) note_dropped();
        return status;
    }

    // A whole message of our own (the message-driven API's send), under the same limit.
    send_status send(asio::const_buffer data, message_type type, message_flags flags) {
        send_status status = send_status::closed;
        try {
            status = socket_->send_now(data, type, flags, limit_);
        } catch (const websocket_error&) {  // the socket failed while queueing (e.g. its queue overflowed)
        }
        if (status == send_status::dropped) note_dropped();
        return status;
    }

    // Messages dropped for this socket at its backpressure limit, so far. From any thread.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    bool saturated() const noexcept { return saturated_; }

    duplex::detail::websocket_interface& socket() const noexcept { return *socket_; }
    const std::shared_ptr<duplex::detail::websocket_interface>& socket_handle() const noexcept { return socket_; }
    asio::any_io_executor executor() const { return socket_->get_executor(); }
    const backpressure_options& limit() const noexcept { return limit_; }
    // The window of the compressed frames the socket takes (0: plain frames only).
    int window_bits() const noexcept { return window_bits_; }

protected:
    ~member() = default;
    // The socket's queue has emptied after it reached its limit (on_drain). On the socket's executor.
    virtual void on_drain() {}

private:
    friend class partition;
    friend class registry_state;

    struct subscription {
        std::shared_ptr<partition> at;
        std::size_t index;  // in the partition's member list
    };

    void note_dropped() noexcept {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        if (saturated_) return;
        set_saturated(true);
        socket_->notify_when_drained(this);
    }
    void on_drained() noexcept override {
        if (saturated_) set_saturated(false);
        try {
            on_drain();
        } catch (...) {  // a drain handler's failure is the handler's (the session logs its own)
        }
    }
    inline void set_saturated(bool saturated) noexcept;  // partition.hpp

    std::shared_ptr<duplex::detail::websocket_interface> socket_;
    backpressure_options limit_;
    int window_bits_;
    bool saturated_ = false;
    std::atomic<std::uint64_t> dropped_{0};
    std::vector<subscription> subscriptions_;
};

}  // namespace duplex::pubsub::detail
