// duplex::redis::detail::link — what the publishing and the subscribing connection share: a connection
// kept up on one executor (connect, then reconnect with backoff, forever until stop()), commands queued
// from any thread and written in order in as few writes as possible, and the health check.
//
// Health check (Boost.Redis' rule): PING when nothing was written for health_check_interval; the link
// is dead when a reply is due and nothing was read for twice the interval. A dead or failed connection
// is closed; what was queued for it is dropped (reported to the subclass as lost units), and the next
// connection starts with what the subclass queues in connected_locked() (the subscriber's SUBSCRIBE).
//
// Threads: commands are appended to pending_ under mutex_ by any thread, which posts one wake to the
// executor when the writer may be idle. Everything else runs on the executor: the supervising coroutine
// (connect, back off, reconnect) and its watchdog, the reader and writer loops (completion handlers with
// memory from the per-thread handler cache: no allocation per message), and the subclass hooks except
// connected_locked().
#pragma once

#include <duplex/app/logging.hpp>
#include <duplex/config.hpp>
#include <duplex/detail/handler_allocator.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/redis/connection.hpp>
#include <duplex/redis/error.hpp>
#include <duplex/redis/options.hpp>
#include <duplex/redis/resp.hpp>
#include <duplex/redis/url.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>

namespace duplex::redis::detail {

// Memory for one operation at a time (a posted wake): the block when it is free and large enough, the
// heap otherwise.
struct one_block {
    alignas(std::max_align_t) unsigned char bytes[256];
    std::atomic<bool> in_use{false};
};

template <class T>
struct one_block_allocator {
    using value_type = T;
    explicit one_block_allocator(one_block* b) noexcept : block(b) {}
    template <class U>
    one_block_allocator(const one_block_allocator<U>& other) noexcept : block(other.block) {}

    T* allocate(std::size_t n) {
        if (n * sizeof(T) <= sizeof(block->bytes) && !block->in_use.exchange(true, std::memory_order_acquire))
            return reinterpret_cast<T*>(block->bytes);
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t) noexcept {
        if (reinterpret_cast<unsigned char*>(p) == block->bytes) block->in_use.store(false, std::memory_order_release);
        else ::operator delete(p);
    }
    template <class U>
    bool operator==(const one_block_allocator<U>& other) const noexcept { return block == other.block; }

    one_block* block;
};

class link : public std::enable_shared_from_this<link> {
public:
    using clock = std::chrono::steady_clock;
    // The outcome of the first connection attempt: no error, or the error and what the server or the
    // system said.
    using first_attempt_handler = std::function<void(std::error_code, const std::string& detail)>;

    link(const link&) = delete;
    link& operator=(const link&) = delete;
    virtual ~link() = default;

    // Starts connecting on the executor, and reconnecting whenever the connection fails, until stop().
    void start(first_attempt_handler first) {
        first_ = std::move(first);
        asio::co_spawn(executor_, run(shared_from_this()), asio::detached);
    }

    // Any thread: closes the connection and stops reconnecting; the coroutines end soon after.
    void stop() {
        asio::post(executor_, [self = shared_from_this()] {
            self->stopping_ = true;
            if (self->current_) self->current_->close();
            self->retry_timer_.cancel();
            self->tick_timer_.cancel();
        });
    }

    // Any thread.
    bool connected() const noexcept { return connected_.load(std::memory_order_relaxed); }
    // Connections established so far (the first one plus reconnections).
    std::uint64_t connections() const noexcept { return connections_.load(std::memory_order_relaxed); }
    const endpoint& where() const noexcept { return at_; }

protected:
    link(asio::any_io_executor executor, endpoint at, options o, std::string role)
        : executor_(std::move(executor)), at_(std::move(at)), options_(std::move(o)), role_(std::move(role)),
          retry_timer_(executor_), tick_timer_(executor_) {}

    // Under mutex_, after appending commands to pending_: they expect `replies` replies and carry
    // `units` of what the subclass counts (messages), reported lost if the connection fails first.
    void queued_locked(std::size_t replies, std::size_t units) {
        pending_replies_ += replies;
        pending_units_ += units;
        if (!wake_posted_) {
            wake_posted_ = true;
            // At most one wake is on its way at a time, so it takes its memory from a block of this
            // link's (a publishing thread's own cache would never get it back).
            duplex::detail::post_bound(executor_, asio::bind_allocator(one_block_allocator<void>(&wake_memory_),
                                                                       [self = shared_from_this()] { self->wake(); }));
        }
    }

    // Under mutex_: whether commands queued now go to a live connection.
    bool accepting_locked() const noexcept { return accepting_; }

    // Under mutex_, as a connection comes up (pending_ is empty): queue what it starts with. Returns a
    // note for the log line ("resubscribing 3 channels").
    virtual std::string connected_locked() = 0;
    // On the executor, for every reply: true when it answers a command (rather than being a push).
    virtual bool handle_reply(const resp::reply& r) = 0;
    // On the executor, after a connection failed; `lost_units` were queued or being written.
    virtual void disconnected(std::size_t lost_units) = 0;
    // On the executor, about twice per health_check_interval while connected and once per attempt
    // while not.
    virtual void tick() {}

    void log(log_level level, const std::string& message) const {
        const auto line = role_ + " " + at_.redacted() + ": " + message;
        if (options_.log) options_.log(level, line);
        else duplex::detail::write_log_line("redis", level, line);
    }

    const asio::any_io_executor executor_;
    const endpoint at_;
    const options options_;
    const std::string role_;
    std::mutex mutex_;
    std::string pending_;  // guarded by mutex_

private:
    static awaitable<void> run(std::shared_ptr<link> self) { co_await self->supervise(); }

    awaitable<void> supervise() {
        auto wait = options_.reconnect_wait_min;
        std::uint64_t failures = 0;
        tls::shared_context tls_context;
        if (at_.tls) {
            try {
                tls_context = options_.tls.context ? options_.tls.context : tls::client_context(options_.tls);
            } catch (const std::exception& e) {
                report_first(make_error_code(std::errc::invalid_argument), std::string("TLS: ") + e.what());
                co_return;
            }
        }
        while (!stopping_) {
            connection c(executor_);
            current_ = &c;
            auto ec = co_await c.open(at_, options_, tls_context);
            if (stopping_) break;
            if (ec) {
                if (failures == 0 || failures % 10 == 0)
                    log(log_level::warning, c.error_detail() + " (" + ec.message() + "); retrying");
                ++failures;
                report_first(ec, c.error_detail());
                current_ = nullptr;
                tick();
                retry_timer_.expires_after(wait);
                co_await retry_timer_.async_wait(duplex::detail::use_nothrow_awaitable);
                wait = std::min(wait * 2, options_.reconnect_wait_max);
                continue;
            }
            wait = options_.reconnect_wait_min;
            in_flight_ = 0;
            last_read_ = last_write_ = clock::now();
            std::string note;
            {
                std::lock_guard lock(mutex_);
                accepting_ = true;
                wake_posted_ = false;
                writer_idle_ = true;
                pending_.clear();
                pending_replies_ = pending_units_ = 0;
                note = connected_locked();
            }
            const bool reconnection = connections_.fetch_add(1) != 0;
            connected_.store(true);
            log(log_level::information, std::string(reconnection ? "reconnected" : "connected") +
                                            (failures ? " after " + std::to_string(failures) + " failed attempts" : "") + note);
            failures = 0;
            report_first({}, {});

            auto ended = co_await serve(c);
            ec = ended;
            current_ = nullptr;
            connected_.store(false);
            std::size_t lost = writing_units_;
            writing_units_ = 0;
            writing_.clear();
            {
                std::lock_guard lock(mutex_);
                accepting_ = false;
                lost += pending_units_;
                pending_.clear();
                pending_replies_ = pending_units_ = 0;
            }
            if (!stopping_) log(log_level::warning, "connection lost (" + ec.message() + "); reconnecting");
            disconnected(lost);
        }
        current_ = nullptr;
    }

    // While the connection is up: the reader and the writer run as completion-handler loops (no
    // coroutine frame per reply or per write, their memory from the handler cache), and this coroutine
    // is the watchdog. Whichever fails first records why and closes the connection; this returns once
    // neither loop has an operation left on it.
    awaitable<std::error_code> serve(connection& c) {
        failure_ = {};
        serving_ = true;
        read_next(c);
        write_next(c);
        const auto interval = options_.health_check_interval;
        for (;;) {
            tick_timer_.expires_after(interval / 2);
            co_await tick_timer_.async_wait(duplex::detail::use_nothrow_awaitable);
            if (stopping_ && !failure_) failure_ = errc::connection_closed;
            if (failure_) break;
            const auto now = clock::now();
            if (in_flight_ != 0 && now - last_read_ >= 2 * interval) {
                failure_ = errc::health_check_failed;
                break;
            }
            tick();
            if (now - last_write_ >= interval && in_flight_ == 0) {
                std::lock_guard lock(mutex_);
                if (pending_.empty()) {
                    resp::append_command(pending_, "PING");
                    queued_locked(1, 0);
                    // Its reply is due within twice the interval from now.
                    last_read_ = std::max(last_read_, now);
                }
            }
        }
        serving_ = false;
        c.close();
        while (operations_ != 0) {  // the loops' last handlers run with operation_aborted
            tick_timer_.expires_after(std::chrono::milliseconds(1));
            co_await tick_timer_.async_wait(duplex::detail::use_nothrow_awaitable);
        }
        co_return failure_;
    }

    void fail(std::error_code ec) {
        if (!failure_) failure_ = ec;
        tick_timer_.cancel();
    }

    void read_next(connection& c) {
        resp::reply r;
        for (;;) {
            const auto status = c.next_buffered_reply(r);
            if (status == resp::status::need_more) break;
            if (status == resp::status::invalid) return fail(errc::protocol_error);
            last_read_ = clock::now();
            if (handle_reply(r) && in_flight_ != 0) --in_flight_;
        }
        ++operations_;
        c.async_read_more([this, self = shared_from_this(), &c](std::error_code ec) {
            --operations_;
            if (ec) return fail(ec);
            if (serving_) read_next(c);
        });
    }

    // Takes everything queued and writes it with one write; idle when nothing is queued.
    void write_next(connection& c) {
        {
            std::lock_guard lock(mutex_);
            if (pending_.empty()) {
                wake_posted_ = false;
                writer_idle_ = true;
                return;
            }
            writer_idle_ = false;
            std::swap(pending_, writing_);
            in_flight_ += pending_replies_;
            writing_units_ = pending_units_;
            pending_replies_ = pending_units_ = 0;
        }
        ++operations_;
        c.async_write(writing_, [this, self = shared_from_this(), &c](std::error_code ec) {
            --operations_;
            if (ec) return fail(ec);  // writing_units_ are counted as lost
            writing_.clear();
            writing_units_ = 0;
            last_write_ = clock::now();
            if (serving_) write_next(c);
        });
    }

    // A wake posted by queued_locked: starts the writer if it is idle.
    void wake() {
        if (!serving_ || !current_) return;
        bool idle;
        {
            std::lock_guard lock(mutex_);
            idle = writer_idle_;
        }
        if (idle) write_next(*current_);
    }


    void report_first(std::error_code ec, const std::string& detail) {
        if (!first_) return;
        auto first = std::move(first_);
        first_ = nullptr;
        first(ec, detail);
    }

    asio::steady_timer retry_timer_, tick_timer_;
    one_block wake_memory_;
    first_attempt_handler first_;
    connection* current_ = nullptr;
    bool stopping_ = false;
    bool serving_ = false;           // the reader and writer may start operations on current_
    std::size_t operations_ = 0;     // reads and writes in progress on current_
    std::error_code failure_;        // why the connection is being given up
    std::atomic<bool> connected_{false};
    std::atomic<std::uint64_t> connections_{0};
    // Guarded by mutex_.
    bool accepting_ = false;
    bool wake_posted_ = false;
    bool writer_idle_ = true;
    std::size_t pending_replies_ = 0, pending_units_ = 0;
    // The executor's.
    std::string writing_;
    std::size_t writing_units_ = 0;
    std::size_t in_flight_ = 0;  // replies due
    clock::time_point last_read_{}, last_write_{};
};

}  // namespace duplex::redis::detail
