// A stream that fails on cue, in the spirit of Boost.Beast's test::fail_count: it wraps one end of a real
// connection (e.g. asio::local::connect_pair) and makes its n-th read or write operation fail with an
// error (connection_reset unless told otherwise), counting reads and writes together or only one kind.
// A test runs a scenario with the failure at n = 1, 2, … until a run ends before its n-th operation:
// then every operation the scenario performs has been seen to fail once.
//
// It has what the WebSocket layer asks of a transport (duplex/detail/transport.hpp): async_read_some,
// async_write_some, get_executor, and the wrapped stream's lowest layer for shutdown, close and is_open.
//
// The plan is shared with the test and also records what happened: operations counted and whether the
// failure was injected; operations started and completed (each must complete exactly once); and, as
// every stream holds the plan, `plan.use_count() == 1` once the test's own copy is the last says that
// the layer above has let go of its transport (nothing leaked it, nothing still runs on it).
#pragma once

#include <asio.hpp>

#include <cstddef>
#include <memory>
#include <system_error>
#include <utility>

namespace test {

enum class fault_counting { reads_and_writes, reads_only, writes_only };

struct fault_plan {
    // The n-th counted operation fails (1-based); 0 never fails.
    std::size_t fail_at = 0;
    fault_counting counting = fault_counting::reads_and_writes;
    // Sticky: from the failure on, the connection is broken as by a reset — the wrapped stream is shut
    // down both ways (the peer sees its end, a pending operation here completes) and every later read or
    // write fails with the same error. Not sticky: only the n-th operation fails; the rest go through.
    bool sticky = true;
    std::error_code error = asio::error::connection_reset;
    // At most this many bytes per read or write (0: whatever the wrapped stream does), so that a message
    // takes many operations and a failure can land inside a handshake head, a frame header or a payload.
    std::size_t max_read_size = 0, max_write_size = 0;

    // What happened.
    std::size_t reads = 0, writes = 0;  // every operation started, failing or not
    std::size_t counted = 0;            // operations that counted towards fail_at
    bool injected = false;              // the n-th operation came and was failed
    std::size_t started = 0, completed = 0;
};

// Completes the wrapped handler once, counting it; every association (executor, allocator,
// cancellation slot) is the wrapped handler's, so the operation behaves as if it were not there.
template <class Handler>
struct counted_handler {
    Handler handler;
    std::shared_ptr<fault_plan> plan;

    void operator()(std::error_code ec, std::size_t n) {
        ++plan->completed;
        std::move(handler)(ec, n);
    }
};

template <class Next>
class basic_fault_stream {
public:
    using next_layer_type = Next;
    using executor_type = typename Next::executor_type;
    using lowest_layer_type = typename Next::lowest_layer_type;

    basic_fault_stream(Next next, std::shared_ptr<fault_plan> plan)
        : next_(std::move(next)), plan_(std::move(plan)) {}

    executor_type get_executor() noexcept { return next_.get_executor(); }
    Next& next_layer() noexcept { return next_; }
    lowest_layer_type& lowest_layer() noexcept { return next_.lowest_layer(); }
    const lowest_layer_type& lowest_layer() const noexcept { return next_.lowest_layer(); }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                auto counted = start(std::move(handler));
                ++plan_->reads;
                if (fails(fault_counting::reads_only)) return fail(std::move(counted));
                if (plan_->max_read_size == 0 || asio::buffer_size(b) == 0)
                    next_.async_read_some(b, std::move(counted));
                else
                    next_.async_read_some(first_piece(b, plan_->max_read_size), std::move(counted));
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& b) {
                auto counted = start(std::move(handler));
                ++plan_->writes;
                if (fails(fault_counting::writes_only)) return fail(std::move(counted));
                if (plan_->max_write_size == 0 || asio::buffer_size(b) == 0)
                    next_.async_write_some(b, std::move(counted));
                else
                    next_.async_write_some(first_piece(b, plan_->max_write_size), std::move(counted));
            },
            token, buffers);
    }

private:
    // The first non-empty buffer of a sequence that has one, cut to `limit` bytes: an operation may
    // always transfer less than it was offered.
    template <class BufferSequence>
    static auto first_piece(const BufferSequence& buffers, std::size_t limit) {
        auto it = asio::buffer_sequence_begin(buffers);
        while (it->size() == 0) ++it;
        return asio::buffer(*it, limit);
    }

    template <class Handler>
    counted_handler<Handler> start(Handler handler) {
        ++plan_->started;
        return {std::move(handler), plan_};
    }

    // Whether this operation (a read when `kind` is reads_only, a write when writes_only) fails.
    bool fails(fault_counting kind) {
        auto& p = *plan_;
        if (p.injected && p.sticky) return true;
        if (p.counting != fault_counting::reads_and_writes && p.counting != kind) return false;
        ++p.counted;
        if (p.counted != p.fail_at) return false;
        p.injected = true;
        if (p.sticky) {
            std::error_code ignored;
            next_.lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
        }
        return true;
    }

    // Completes with the planned error and nothing transferred, never inside the initiating call.
    template <class Handler>
    void fail(Handler counted) {
        auto executor = asio::get_associated_executor(counted, next_.get_executor());
        asio::post(executor, [counted = std::move(counted), ec = plan_->error]() mutable {
            std::move(counted)(ec, std::size_t{0});
        });
    }

    Next next_;
    std::shared_ptr<fault_plan> plan_;
};

using fault_stream = basic_fault_stream<asio::local::stream_protocol::socket>;

}  // namespace test

template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct asio::associator<Associator, test::counted_handler<Handler>, DefaultCandidate> {
    using type = typename Associator<Handler, DefaultCandidate>::type;

    static type get(const test::counted_handler<Handler>& h, const DefaultCandidate& c = DefaultCandidate()) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
