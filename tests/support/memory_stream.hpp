// An in-memory Asio stream for tests and fuzzers: the peer's bytes are a string served in chunks of a
// chosen size, and what the stream under test writes is recorded. It has what the WebSocket layer asks
// of a transport (duplex/detail/transport.hpp): async_read_some, async_write_some, get_executor and a
// lowest layer with shutdown, close, cancel and is_open.
//
// Every operation takes effect at once and completes through a post to the handler's executor, as an
// Asio operation must never complete inside its initiating call. Reads past the end of the input see
// end-of-stream, so a stream driven over it always finishes without waiting for time to pass.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

namespace test {

class memory_stream {
public:
    // The state lives apart from the stream object, which the WebSocket layer moves into itself, so the
    // test can still read what was written after the stream is gone.
    struct state {
        std::vector<std::byte> input;      // what the peer sends
        std::size_t read_position = 0;
        std::size_t read_chunk = SIZE_MAX;   // at most this many bytes per read
        std::size_t write_chunk = SIZE_MAX;  // at most this many bytes accepted per write
        std::vector<std::byte> output;     // what the stream under test wrote
        bool open = true;
        bool send_shut = false;
        bool receive_shut = false;
        std::size_t reads = 0, writes = 0;
        // Called before each read is served: lets a test answer what was written so far (e.g. put the
        // Sec-WebSocket-Accept for the client's random key into the input).
        std::function<void(state&)> before_read;
    };

    using executor_type = asio::any_io_executor;
    using lowest_layer_type = memory_stream;
    enum shutdown_type { shutdown_receive, shutdown_send, shutdown_both };

    memory_stream(executor_type executor, std::shared_ptr<state> s)
        : executor_(std::move(executor)), state_(std::move(s)) {}

    executor_type get_executor() const noexcept { return executor_; }
    lowest_layer_type& lowest_layer() noexcept { return *this; }
    const lowest_layer_type& lowest_layer() const noexcept { return *this; }

    bool is_open() const noexcept { return state_->open; }

    void close(std::error_code& ec) noexcept {
        state_->open = false;
        ec = {};
    }

    // Operations complete at once: there is never one to cancel.
    void cancel(std::error_code& ec) noexcept { ec = {}; }

    void shutdown(shutdown_type what, std::error_code& ec) noexcept {
        if (!state_->open) {
            ec = asio::error::bad_descriptor;
            return;
        }
        if (what != shutdown_receive) state_->send_shut = true;
        if (what != shutdown_send) state_->receive_shut = true;
        ec = {};
    }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                auto [ec, n] = read(b);
                complete(std::move(handler), ec, n);
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& b) {
                auto [ec, n] = write(b);
                complete(std::move(handler), ec, n);
            },
            token, buffers);
    }

private:
    template <class Handler>
    void complete(Handler handler, std::error_code ec, std::size_t n) {
        auto executor = asio::get_associated_executor(handler, executor_);
        asio::post(executor, [handler = std::move(handler), ec, n]() mutable { std::move(handler)(ec, n); });
    }

    template <class MutableBufferSequence>
    std::pair<std::error_code, std::size_t> read(const MutableBufferSequence& buffers) {
        auto& s = *state_;
        ++s.reads;
        if (!s.open) return {asio::error::bad_descriptor, 0};
        if (asio::buffer_size(buffers) == 0) return {{}, 0};
        if (s.before_read) s.before_read(s);
        if (s.receive_shut || s.read_position >= s.input.size()) return {asio::error::eof, 0};
        const auto available = std::min(s.input.size() - s.read_position, s.read_chunk);
        const auto n = asio::buffer_copy(buffers, asio::buffer(s.input.data() + s.read_position, available));
        s.read_position += n;
        return {{}, n};
    }

    template <class ConstBufferSequence>
    std::pair<std::error_code, std::size_t> write(const ConstBufferSequence& buffers) {
        auto& s = *state_;
        ++s.writes;
        if (!s.open) return {asio::error::bad_descriptor, 0};
        if (s.send_shut) return {asio::error::broken_pipe, 0};
        const auto total = asio::buffer_size(buffers);
        const auto n = std::min(total, s.write_chunk);
        const auto old_size = s.output.size();
        s.output.resize(old_size + n);
        asio::buffer_copy(asio::buffer(s.output.data() + old_size, n), buffers, n);
        return {{}, n};
    }

    executor_type executor_;
    std::shared_ptr<state> state_;
};

}  // namespace test
