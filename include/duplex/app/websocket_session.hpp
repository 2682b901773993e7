// duplex::websocket_session<UserData> — one connection of the message-driven API (app.map_websocket):
// what its handlers get to send, close, subscribe and publish, its user data, and the engine that
// drives it with completion handlers instead of a coroutine.
//
// The engine: a receive with an empty buffer waits until a message's data has arrived (it holds no
// buffer; over TCP the stream waits with a 1-byte peek once the connection is quiet); then a buffer is
// taken from a per-thread pool, the message is received into it (grown as needed, up to the stream's
// max_message_size) and handed to on_message; the buffer goes back and the next wait starts. A
// coroutine handler runs to its end before the next receive, so messages stay in order. An idle
// connection holds the stream, the pending wait, its keep-alive timer and this object: no coroutine
// frame, no buffer, nothing of the HTTP request.
//
// Everything a handler calls runs on the session's executor; send and close called from elsewhere are
// carried there (and send then says queued without knowing the outcome).
#pragma once

#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/message_buffer_pool.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/websocket_handlers.hpp>
#include <duplex/config.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/pubsub/detail/member.hpp>
#include <duplex/pubsub/topic_registry.hpp>
#include <duplex/websocket/websocket.hpp>

#include <algorithm>
#include <exception>
#include <list>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

namespace detail {
// What the sessions of one route share: the handlers, the path (for the log), the app's log and
// connection registry, the topics, and the size of the buffers messages are received into.
template <class UserData>
struct websocket_route {
    websocket_handlers<UserData> handlers;
    std::string path;
    app_core& core;
    pubsub::topic_registry topics;
    std::size_t receive_buffer_size;
};
}  // namespace detail

template <class UserData>
class websocket_session final : public pubsub::detail::member,
                                public detail::connection_base,
                                public std::enable_shared_from_this<websocket_session<UserData>> {
public:
    // ---- for handlers ----

    // Queues a whole message (copied; compressed when negotiated) unless the socket is at its
    // backpressure limit (then dropped, or the socket failed with 1008) or closing. Never waits.
    send_status send(asio::const_buffer data, message_type type, message_flags flags = message_flags::none) {
        if (!on_executor()) {
            asio::post(executor_, [self = this->shared_from_this(), copy = std::string(as_text(data)), type, flags] {
                self->send(asio::buffer(copy), type, flags);
            });
            return send_status::queued;
        }
        return member::send(data, type, flags);
    }
    send_status send(std::string_view text, message_flags flags = message_flags::none) {
        return send(asio::buffer(text), message_type::text, flags);
    }

    // Starts the close handshake (bounded by the stream's close_timeout); on_close follows.
    void close(close_status status = close_status::normal_closure, std::string_view description = {}) {
        if (!on_executor()) {
            asio::post(executor_, [self = this->shared_from_this(), status, d = std::string(description)] {
                self->close(status, d);
            });
            return;
        }
        start_close(status, description);
    }
    // Drops the connection at once; on_close follows with 1006.
    void abort() noexcept { socket().abort(); }

    // Topics (route.topics, the app's registry), on the session's executor.
    bool subscribe(std::string_view topic) { return registry().subscribe(*this, topic); }
    bool unsubscribe(std::string_view topic) { return registry().unsubscribe(*this, topic); }
    bool is_subscribed(std::string_view topic) const { return registry().is_subscribed(*this, topic); }
    std::vector<std::string> topics() const { return registry().topics_of(*this); }
    // To every subscriber of `topic`, this socket included when subscribed (app.topics().publish).
    pubsub::publish_result publish(std::string_view topic, asio::const_buffer data, message_type type,
                                   message_flags flags = message_flags::none) {
        return route_->topics.publish(topic, data, type, flags);
    }
    pubsub::publish_result publish(std::string_view topic, std::string_view text) {
        return publish(topic, asio::buffer(text), message_type::text);
    }
    // To every subscriber of `topic` but this socket (uWebSockets' ws.publish, SignalR's OthersInGroup).
    pubsub::publish_result publish_to_others(std::string_view topic, asio::const_buffer data, message_type type,
                                             message_flags flags = message_flags::none) {
        return registry().publish(topic, {static_cast<const std::byte*>(data.data()), data.size()}, type, flags, this);
    }

    UserData& data() noexcept { return data_; }
    const UserData& data() const noexcept { return data_; }
    std::size_t buffered_amount() const noexcept { return socket().buffered_amount(); }
    websocket_state state() const noexcept { return socket().state(); }
    const std::string& sub_protocol() const noexcept { return socket().sub_protocol(); }
    const asio::any_io_executor& get_executor() const noexcept { return executor_; }
    const pubsub::topic_registry& topic_registry() const noexcept { return route_->topics; }

    // ---- the app's side (map_websocket) ----

    websocket_session(const websocket& ws, std::shared_ptr<const detail::websocket_route<UserData>> route)
        : member(detail::websocket_access::interface_of(ws), route->handlers.backpressure),
          route_(std::move(route)),
          executor_(ws.get_executor()) {}

    // Counts the connection in the app (max_connections, the graceful shutdown), runs on_open with the
    // request's context, then starts receiving. On the socket's executor, within the request.
    awaitable<void> open(http_context& ctx) {
        auto& core = route_->core;
        ++core.active_connections;
        registration_ = core.enroll(this->weak_from_this());
        enrolled_ = true;
        if (auto opened = call(route_->handlers.on_open, ctx)) {
            try {
                co_await std::move(*opened);
            } catch (...) {
                handler_failed(std::current_exception());
            }
        }
        if (core.stopping) begin_shutdown();
        if (!closing_) wait_for_message();
    }

    void begin_shutdown() override { close(close_status::endpoint_unavailable, "server shutting down"); }
    // The app's io_context runs no more (the shutdown gave up on this connection): its subscriptions
    // go now, from the calling thread, as nothing else can touch them any more.
    void abandon() noexcept override {
        if (!finished_) registry().unsubscribe_all(*this);
    }

    websocket_session(const websocket_session&) = delete;
    websocket_session& operator=(const websocket_session&) = delete;
    ~websocket_session() {
        if (finished_) return;
        registry().unsubscribe_all(*this);  // the topics must not keep a pointer to this
        leave_app();
    }

private:
    bool on_executor() const noexcept { return duplex::detail::running_in(executor_); }
    pubsub::detail::registry_state& registry() const noexcept { return *route_->topics.state(); }
    static std::string_view as_text(asio::const_buffer data) noexcept {
        return {static_cast<const char*>(data.data()), data.size()};
    }

    // Runs a handler: a plain one now (its exception failing the connection with 1011), a coroutine
    // one is returned to be awaited.
    template <class Handler, class... Args>
    std::optional<awaitable<void>> call(const Handler& handler, Args&&... args) {
        if (!handler) return std::nullopt;
        try {
            return handler(*this, std::forward<Args>(args)...);
        } catch (...) {
            handler_failed(std::current_exception());
            return std::nullopt;
        }
    }

    // A handler threw: logged as the app host logs a handler's failure, and the connection closes with
    // 1011 (internal error).
    void handler_failed(std::exception_ptr failure) {
        std::string what = "a non-standard exception";
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        route_->core.log(log_level::error, "WebSocket handler for " + route_->path + " failed: " + what);
        start_close(close_status::internal_server_error, "internal error");
    }

    // ---- receiving ----

    void wait_for_message() {
        receive(asio::mutable_buffer{}, &websocket_session::on_message_ready);
    }

    // What has arrived together is handled in one turn of the event loop: a piece already buffered
    // completes inline, up to inline_receives in a row on this thread (then one completion is posted and
    // the stack unwinds), so that what the handlers send for those messages leaves in one write. Posting
    // every completion made a stream of small requests cost a write each (benchmarks/run --fanout: 7.9 µs
    // of server CPU per delivery instead of 1.1-1.5). Not while the socket is at its backpressure limit:
    // then the write gets its turn first, as before, rather than the next message's send being dropped.
    static constexpr int inline_receives = 16;
    template <class Next>
    void receive(asio::mutable_buffer into, Next next) {
        receive_pending_ = true;
        detail::receive_completion completion(
            [self = this->shared_from_this(), next](std::error_code ec, receive_result r) {
                self->receive_pending_ = false;
                ((*self).*next)(ec, std::move(r));
            },
            executor_);
        thread_local int nested = 0;
        if (nested == inline_receives || socket().buffered_amount() >= route_->handlers.backpressure.max_backpressure_bytes)
            return socket().start_receive(into, std::move(completion));
        ++nested;
        socket().start_receive_now(into, std::move(completion));
        --nested;
    }

    void on_message_ready(std::error_code ec, receive_result r) {
        if (ec || r.close_status) return after_receive(ec, std::move(r));
        // An empty message is whole already (the wait consumed its frame): no buffer for it.
        if (r.end_of_message) return deliver_empty_message(r.message_type);
        buffer_ = detail::message_buffer_pool::take(route_->receive_buffer_size);
        filled_ = 0;
        receive_piece();
    }

    void deliver_empty_message(message_type type) {
        if (route_->handlers.on_message_piece)
            return handled(call(route_->handlers.on_message_piece, std::string_view{}, type, true), false);
        handled(call(route_->handlers.on_message, std::string_view{}, type), false);
    }

    void receive_piece() {
        receive(asio::buffer(buffer_.data() + filled_, buffer_.size() - filled_), &websocket_session::on_piece);
    }

    void on_piece(std::error_code ec, receive_result r) {
        if (ec || r.close_status) {
            release_buffer();
            return after_receive(ec, std::move(r));
        }
        filled_ += r.count;
        if (route_->handlers.on_message_piece) {
            const std::string_view piece(reinterpret_cast<const char*>(buffer_.data()), filled_);
            filled_ = 0;
            return handled(call(route_->handlers.on_message_piece, piece, r.message_type, r.end_of_message),
                           !r.end_of_message);
        }
        if (!r.end_of_message) {
            // Larger than the buffer: grow it, never past what the stream lets a message be (it fails
            // the connection with 1009 beyond), keeping a byte of room so that each receive has some.
            if (filled_ == buffer_.size()) buffer_.resize(std::max(filled_ + 1, std::min(2 * filled_, max_message_size() + 1)));
            return receive_piece();
        }
        const std::string_view message(reinterpret_cast<const char*>(buffer_.data()), filled_);
        handled(call(route_->handlers.on_message, message, r.message_type), false);
    }

    // After a handler: a coroutine runs to its end first; then the next piece of the same message, or
    // the buffer goes back and the wait for the next message starts.
    void handled(std::optional<awaitable<void>> coroutine, bool more_of_message) {
        if (!coroutine) return continue_receiving(more_of_message);
        asio::co_spawn(executor_, std::move(*coroutine),
                       [self = this->shared_from_this(), more_of_message](std::exception_ptr failure) {
                           if (failure) self->handler_failed(failure);
                           self->continue_receiving(more_of_message);
                       });
    }

    void continue_receiving(bool more_of_message) {
        if (more_of_message) return receive_piece();
        release_buffer();
        if (!closing_ || keep_receiving_while_closing_) wait_for_message();
    }

    void release_buffer() noexcept {
        if (buffer_.capacity() != 0) detail::message_buffer_pool::give_back(std::move(buffer_));
        buffer_ = {};
    }

    std::size_t max_message_size() const noexcept { return route_->core.options.websocket_limits.max_message_size; }

    // ---- the end ----

    // A receive ended with the peer's close frame or an error.
    void after_receive(std::error_code ec, receive_result r) {
        if (r.close_status) {
            peer_status_ = *r.close_status;
            peer_description_ = std::move(r.close_status_description);
            peer_closed_ = true;
            if (!closing_) start_close(peer_status_, peer_description_);  // answer it in kind
            return;
        }
        if (closing_) return;  // the close under way ends the connection (close_done)
        finish(abnormal_closure, ec.message());
    }

    void start_close(close_status status, std::string_view description) {
        if (closing_ || finished_) return;
        closing_ = true;
        // A close started while our receive waits lets that receive read the peer's close frame (so we
        // go on receiving); started while none waits, the close reads the rest itself.
        keep_receiving_while_closing_ = receive_pending_;
        own_status_ = status;
        own_description_.assign(description);
        websocket(socket_handle())
            .async_close(status, own_description_,
                         [self = this->shared_from_this()](std::error_code ec) { self->close_done(ec); });
    }

    void close_done(std::error_code ec) {
        if (peer_closed_) return finish(peer_status_, peer_description_);
        if (ec) return finish(abnormal_closure, ec.message());
        finish(own_status_, own_description_);
    }

    // Once: the subscriptions go, the transport is released, on_close runs, and the app stops counting
    // the connection.
    void finish(close_status status, std::string_view description) {
        if (finished_) return;
        finished_ = true;
        registry().unsubscribe_all(*this);
        socket().abort();
        if (auto closed = call(route_->handlers.on_close, status, description)) {
            asio::co_spawn(executor_, std::move(*closed), [self = this->shared_from_this()](std::exception_ptr failure) {
                if (failure) self->handler_failed(failure);
                self->leave_app();
            });
            return;
        }
        leave_app();
    }

    void leave_app() noexcept {
        if (!enrolled_) return;
        enrolled_ = false;
        route_->core.withdraw(registration_);
        --route_->core.active_connections;
    }

    void on_drain() override {
        if (auto drained = call(route_->handlers.on_drain)) {
            asio::co_spawn(executor_, std::move(*drained), [self = this->shared_from_this()](std::exception_ptr failure) {
                if (failure) self->handler_failed(failure);
            });
        }
    }

    static constexpr auto abnormal_closure = static_cast<close_status>(1006);

    std::shared_ptr<const detail::websocket_route<UserData>> route_;
    asio::any_io_executor executor_;
    std::list<std::weak_ptr<detail::connection_base>>::iterator registration_{};
    std::vector<std::byte> buffer_;  // only while a message is being received and handled
    std::size_t filled_ = 0;
    bool enrolled_ = false, receive_pending_ = false, closing_ = false, keep_receiving_while_closing_ = false,
         peer_closed_ = false, finished_ = false;
    close_status peer_status_ = close_status::empty, own_status_ = close_status::empty;
    std::string peer_description_, own_description_;
    UserData data_{};
};

namespace detail {
// A WebSocket request for a route of map_websocket: accepted, handed from the request to a session,
// opened (on_open, with the request's context), and left to run on its own as the request ends.
template <class UserData>
awaitable<void> open_session(http_context& ctx, std::shared_ptr<const websocket_route<UserData>> route) {
    auto ws = co_await ctx.websockets.accept_websocket(route->handlers.accept);
    ctx.websockets.hand_over();
    const auto session = std::make_shared<websocket_session<UserData>>(ws, std::move(route));
    co_await session->open(ctx);
}
}  // namespace detail

}  // namespace duplex
