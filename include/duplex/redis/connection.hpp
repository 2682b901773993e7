// duplex::redis::connection — one connection to a Redis server on an Asio executor, over TCP or TLS:
// open() connects, handshakes and logs in (AUTH, SELECT), then write() sends command bytes and
// read_reply() returns the next reply, parsed in place from the connection's read buffer.
//
// For a steady flow (detail/link.hpp) the same as completion-handler operations, with no coroutine
// frame per reply: next_buffered_reply() parses what has arrived, async_read_more() reads more into the
// buffer, async_write() writes. Not thread-safe: one read and one write at a time, on the executor.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/handler_allocator.hpp>
#include <duplex/redis/error.hpp>
#include <duplex/redis/options.hpp>
#include <duplex/redis/resp.hpp>
#include <duplex/redis/url.hpp>
#include <duplex/tls/stream.hpp>

#include <asio/experimental/awaitable_operators.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

namespace duplex::redis {

class connection {
public:
    explicit connection(asio::any_io_executor executor) : socket_(std::move(executor)) {}

    asio::any_io_executor get_executor() { return socket_.get_executor(); }

    // Within options.connect_timeout: resolves and connects to `at`, handshakes TLS for rediss://,
    // then sends AUTH (when there is a password), SELECT (database ≠ 0) and PING, so that a server
    // wanting a password it was not given says so now. On failure the connection is closed and
    // error_detail() has the server's or the system's words.
    awaitable<std::error_code> open(const endpoint& at, const options& o, tls::shared_context tls_context = {}) {
        using namespace asio::experimental::awaitable_operators;
        detail_.clear();
        limits_ = o.limits;
        auto steps = open_steps(at, o, std::move(tls_context));
        auto deadline = timeout(o.connect_timeout);
        auto outcome = co_await (std::move(steps) || std::move(deadline));
        std::error_code ec = errc::connect_timeout;
        if (outcome.index() == 0) ec = std::get<0>(outcome);
        else detail_ = "no connection within " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(o.connect_timeout).count()) + " ms";
        if (ec) close();
        co_return ec;
    }

    awaitable<std::error_code> write(std::string_view bytes) {
        auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, asio::buffer(bytes), duplex::detail::use_nothrow_awaitable)
                            : co_await asio::async_write(socket_, asio::buffer(bytes), duplex::detail::use_nothrow_awaitable);
        co_return ec;
    }

    // The next reply; its views stay valid until the next call.
    awaitable<std::error_code> read_reply(resp::reply& r) {
        for (;;) {
            const auto status = next_buffered_reply(r);
            if (status == resp::status::complete) co_return std::error_code();
            if (status == resp::status::invalid) co_return errc::protocol_error;
            make_room();
            auto [ec, n] = co_await read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_));
            if ((ec = transport_error(ec))) co_return ec;
            end_ += n;
        }
    }

    // The next reply among the bytes read so far: complete (its views valid until the next call),
    // need_more, or invalid (error_detail() says so).
    resp::status next_buffered_reply(resp::reply& r) {
        begin_ += consumed_;
        consumed_ = 0;
        const auto [status, used] = resp::parse(std::string_view(buffer_.data() + begin_, end_ - begin_), r, limits_);
        if (status == resp::status::complete) consumed_ = used;
        else if (status == resp::status::invalid) detail_ = "invalid RESP2 from the server";
        return status;
    }

    // Reads more bytes into the buffer; `handler(std::error_code)` (errc::connection_closed for an
    // orderly end). The views of the last reply are invalid from here on.
    template <class Handler>
    void async_read_more(Handler&& handler) {
        begin_ += consumed_;
        consumed_ = 0;
        make_room();
        const auto into = asio::buffer(buffer_.data() + end_, buffer_.size() - end_);
        auto done = [this, h = std::forward<Handler>(handler)](std::error_code ec, std::size_t n) mutable {
            end_ += n;
            h(transport_error(ec));
        };
        // Memory from the per-thread handler cache: nothing from the heap per read in steady state.
        auto bound = asio::bind_allocator(duplex::detail::handler_allocator<void>{}, std::move(done));
        if (tls_) tls_->async_read_some(into, std::move(bound));
        else socket_.async_read_some(into, std::move(bound));
    }

    // Writes all of `bytes` (which must stay valid until the handler runs); `handler(std::error_code)`.
    template <class Handler>
    void async_write(std::string_view bytes, Handler&& handler) {
        auto done = asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                         [h = std::forward<Handler>(handler)](std::error_code ec, std::size_t) mutable { h(ec); });
        if (tls_) asio::async_write(*tls_, asio::buffer(bytes), std::move(done));
        else asio::async_write(socket_, asio::buffer(bytes), std::move(done));
    }

    void close() noexcept {
        std::error_code ignored;
        if (tls_) tls_->lowest_layer().close(ignored);
        else socket_.close(ignored);
    }

    const std::string& error_detail() const noexcept { return detail_; }

private:
    awaitable<std::error_code> open_steps(const endpoint& at, const options& o, tls::shared_context tls_context) {
        std::error_code ec;
        const auto address = asio::ip::make_address(at.host, ec);
        if (!ec) {
            auto [connect_ec] = co_await socket_.async_connect({address, at.port}, duplex::detail::use_nothrow_awaitable);
            ec = connect_ec;
        } else {
            asio::ip::tcp::resolver resolver(socket_.get_executor());
            auto [resolve_ec, results] =
                co_await resolver.async_resolve(at.host, std::to_string(at.port), duplex::detail::use_nothrow_awaitable);
            if (resolve_ec) {
                detail_ = "cannot resolve " + at.host + ": " + resolve_ec.message();
                co_return resolve_ec;
            }
            auto [connect_ec, ignored] = co_await asio::async_connect(socket_, results, duplex::detail::use_nothrow_awaitable);
            ec = connect_ec;
        }
        if (ec) {
            detail_ = "cannot connect to " + at.address() + ": " + ec.message();
            co_return ec;
        }
        socket_.set_option(asio::ip::tcp::no_delay(true), ec);
        if (at.tls) {
            if (!tls_context) tls_context = o.tls.context ? o.tls.context : tls::client_context(o.tls);
            tls_.emplace(std::move(socket_), std::move(tls_context));
            const auto& name = o.tls.server_name.empty() ? at.host : o.tls.server_name;
            ec = co_await tls_->handshake(name, o.connect_timeout, o.tls.verify_host_name);
            if (ec) {
                detail_ = "TLS handshake with " + at.address() + " failed: " + ec.message();
                if (const auto why = tls_->verify_error(); !why.empty()) detail_ += " (" + why + ")";
                co_return ec;
            }
        }
        std::string hello;
        std::size_t replies = 1;
        if (!at.password.empty()) {
            if (at.user.empty()) resp::append_command(hello, "AUTH", at.password);
            else resp::append_command(hello, "AUTH", at.user, at.password);
            ++replies;
        }
        if (at.database != 0) {
            resp::append_command(hello, "SELECT", std::to_string(at.database));
            ++replies;
        }
        resp::append_command(hello, "PING");
        if ((ec = co_await write(hello))) {
            detail_ = "cannot write to " + at.address() + ": " + ec.message();
            co_return ec;
        }
        resp::reply r;
        bool authenticating = !at.password.empty();
        bool selecting = at.database != 0;
        for (std::size_t i = 0; i < replies; ++i) {
            if ((ec = co_await read_reply(r))) {
                if (detail_.empty()) detail_ = "no reply from " + at.address() + ": " + ec.message();
                co_return ec;
            }
            const bool was_auth = authenticating;
            const bool was_select = !authenticating && selecting;
            if (authenticating) authenticating = false;
            else if (selecting) selecting = false;
            if (!r.is_error()) continue;
            const auto text = r.top.text;
            detail_ = std::string(text);
            if (was_auth || text.starts_with("NOAUTH") || text.starts_with("WRONGPASS")) co_return errc::authentication_failed;
            if (was_select) co_return errc::select_failed;
            co_return errc::server_error;
        }
        co_return std::error_code();
    }

    awaitable<std::error_code> timeout(std::chrono::steady_clock::duration after) {
        asio::steady_timer timer(socket_.get_executor(), after);
        co_await timer.async_wait(duplex::detail::use_nothrow_awaitable);
        co_return errc::connect_timeout;
    }

    static std::error_code transport_error(std::error_code ec) noexcept {
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) return errc::connection_closed;
        return ec;
    }

    awaitable<std::tuple<std::error_code, std::size_t>> read_some(asio::mutable_buffer b) {
        if (tls_) co_return co_await tls_->async_read_some(b, duplex::detail::use_nothrow_awaitable);
        co_return co_await socket_.async_read_some(b, duplex::detail::use_nothrow_awaitable);
    }

    // Moves what is unparsed to the front and grows the buffer when less than a quarter of it is free.
    // Empty and grown past kept_buffer_bytes by a large reply, it goes back to its first size.
    void make_room() {
        if (begin_ == end_) {
            begin_ = end_ = 0;
            if (buffer_.size() > kept_buffer_bytes) std::string(first_buffer_bytes, '\0').swap(buffer_);
        } else if (begin_ != 0) {
            std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (buffer_.size() - end_ < buffer_.size() / 4 || buffer_.size() - end_ < 1024)
            buffer_.resize(std::max(first_buffer_bytes, buffer_.size() * 2));
    }

    static constexpr std::size_t first_buffer_bytes = 16 * 1024;
    static constexpr std::size_t kept_buffer_bytes = 1024 * 1024;

    asio::ip::tcp::socket socket_;
    std::optional<tls::stream<asio::ip::tcp::socket>> tls_;
    std::string buffer_;
    std::size_t begin_ = 0, end_ = 0, consumed_ = 0;
    resp::limits limits_;
    std::string detail_;
};

}  // namespace duplex::redis
