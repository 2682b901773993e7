// duplex::task_completion_source<T> — ASP.NET's TaskCompletionSource for coroutines: a result that
// is set once, from any thread, and awaited by any number of coroutines, each resumed on its own
// executor. The seed uses it to keep a request alive while a background service owns its WebSocket.
//
// An awaiter is a suspended coroutine parked in the task's state, not in its io_context: one whose
// task is never completed would outlive its io_context, and with it everything its frames own (a
// coroutine that holds the very task it awaits would never be freed at all). So each io_context
// with awaiters keeps a list of those states (task_waiters_service), and its shutdown destroys the
// awaiters still parked there, as it destroys its own pending operations.
#pragma once

#include <duplex/config.hpp>

#include <algorithm>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace duplex {

// What an awaiter of a canceled task gets (ASP.NET: TaskCanceledException).
class task_canceled : public std::system_error {
public:
    task_canceled() : std::system_error(std::make_error_code(std::errc::operation_canceled), "the task was canceled") {}
};

namespace detail {

// The outcome, once known: a value (std::monostate for void), an exception, or cancellation (carried
// as the task_canceled exception).
template <class T>
using task_outcome = std::variant<std::monostate, T, std::exception_ptr>;

template <class T>
struct task_waiter {
    explicit task_waiter(asio::execution_context* c) noexcept : context(c) {}
    virtual ~task_waiter() = default;
    virtual void complete(const task_outcome<T>& outcome) = 0;
    asio::execution_context* context;  // where the awaiter resumes (null: no io_context of ours)
};

// What an io_context's shutdown can do to a task's state: destroy the awaiters that would resume on it.
class abandonable_waiters {
public:
    virtual void abandon_waiters(asio::execution_context& context) noexcept = 0;

protected:
    ~abandonable_waiters() = default;
};

// Per execution context: the task states that have (or had) awaiters resuming on it. Its shutdown
// destroys those awaiters, which destroys their coroutines, as the context does with its own pending
// operations.
class task_waiters_service final : public asio::execution_context::service {
public:
    using key_type = task_waiters_service;
    static inline asio::execution_context::id id;

    explicit task_waiters_service(asio::execution_context& context) : service(context) {}

    void track(std::weak_ptr<abandonable_waiters> state) {
        std::lock_guard lock(mutex_);
        // Forget the states that are gone whenever the list doubles: amortized constant per awaiter.
        if (states_.size() >= 2 * live_after_last_sweep_ + 16) {
            std::erase_if(states_, [](const auto& weak) { return weak.expired(); });
            live_after_last_sweep_ = states_.size();
        }
        states_.push_back(std::move(state));
    }

private:
    void shutdown() override {
        std::vector<std::shared_ptr<abandonable_waiters>> live;
        {
            std::lock_guard lock(mutex_);
            for (auto& weak : states_)
                if (auto state = weak.lock()) live.push_back(std::move(state));
            states_.clear();
        }
        for (auto& state : live) state->abandon_waiters(context());
    }

    std::mutex mutex_;
    std::vector<std::weak_ptr<abandonable_waiters>> states_;
    std::size_t live_after_last_sweep_ = 0;
};

// The execution context a handler resumes on, when its executor can tell.
template <class Executor>
asio::execution_context* context_of(const Executor& executor) noexcept {
    if constexpr (asio::execution::is_executor<Executor>::value)
        return &asio::query(executor, asio::execution::context);
    else
        return &executor.context();
}

template <class T, class Handler>
struct task_waiter_for final : task_waiter<T> {
    explicit task_waiter_for(Handler h)
        : task_waiter<T>(context_of(asio::get_associated_executor(h))), handler(std::move(h)) {}

    // Resumes the awaiter on its own executor, never inline on the completing thread.
    void complete(const task_outcome<T>& outcome) override {
        auto executor = asio::get_associated_executor(handler);
        asio::post(executor, [h = std::move(handler), outcome]() mutable {
            if (const auto* error = std::get_if<std::exception_ptr>(&outcome)) {
                if constexpr (std::is_same_v<T, std::monostate>) std::move(h)(*error);
                else std::move(h)(*error, T{});
            } else if constexpr (std::is_same_v<T, std::monostate>) {
                std::move(h)(std::exception_ptr{});
            } else {
                std::move(h)(std::exception_ptr{}, std::get<T>(outcome));
            }
        });
    }

    Handler handler;
};

template <class T>
class task_state final : public abandonable_waiters, public std::enable_shared_from_this<task_state<T>> {
public:
    // Completes once; later attempts return false.
    bool complete(task_outcome<T> outcome) {
        std::vector<std::unique_ptr<task_waiter<T>>> waiters;
        {
            std::lock_guard lock(mutex_);
            if (outcome_.index() != 0) return false;
            outcome_ = std::move(outcome);
            waiters.swap(waiters_);
        }
        for (auto& w : waiters) w->complete(outcome_);
        return true;
    }

    template <class Handler>
    void wait(Handler handler) {
        auto waiter = std::make_unique<task_waiter_for<T, Handler>>(std::move(handler));
        auto* context = waiter->context;
        {
            std::lock_guard lock(mutex_);
            if (outcome_.index() == 0) {
                waiters_.push_back(std::move(waiter));
                if (context) asio::use_service<task_waiters_service>(*context).track(this->weak_from_this());
                return;
            }
        }
        // outcome_ never changes once set, so reading it outside the lock is safe.
        waiter->complete(outcome_);
    }

    bool is_completed() const {
        std::lock_guard lock(mutex_);
        return outcome_.index() != 0;
    }

    void abandon_waiters(asio::execution_context& context) noexcept override {
        std::vector<std::unique_ptr<task_waiter<T>>> abandoned;
        {
            std::lock_guard lock(mutex_);
            const auto resumes_there = [&](const auto& w) { return w->context == &context; };
            std::copy_if(std::make_move_iterator(waiters_.begin()), std::make_move_iterator(waiters_.end()),
                         std::back_inserter(abandoned), resumes_there);
            std::erase_if(waiters_, [](const auto& w) { return !w; });
        }
        // Destroyed outside the lock: a coroutine's frames may hold this very task.
    }

private:
    mutable std::mutex mutex_;
    task_outcome<T> outcome_;
    std::vector<std::unique_ptr<task_waiter<T>>> waiters_;
};

}  // namespace detail

// T must be copyable: every awaiter receives its own copy of the result.
template <class T = void>
class task_completion_source {
    using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

public:
    task_completion_source() : state_(std::make_shared<detail::task_state<value_type>>()) {}

    // Each returns false when the task was already completed.
    template <class U = T>
        requires(!std::is_void_v<U>)
    bool try_set_result(U value) {
        return state_->complete(detail::task_outcome<value_type>(std::in_place_index<1>, std::move(value)));
    }
    template <class U = T>
        requires std::is_void_v<U>
    bool try_set_result() {
        return state_->complete(detail::task_outcome<value_type>(std::in_place_index<1>));
    }
    bool try_set_exception(std::exception_ptr error) {
        return state_->complete(detail::task_outcome<value_type>(std::in_place_index<2>, std::move(error)));
    }
    bool try_set_canceled() { return try_set_exception(std::make_exception_ptr(task_canceled())); }

    bool is_completed() const { return state_->is_completed(); }

    // Awaits the outcome: returns the result, or rethrows the exception (task_canceled when canceled).
    // The task_completion_source may be destroyed while awaiters wait; they keep its state.
    awaitable<T> task() const {
        // Named, not a temporary inside the co_await expression: g++ 12 destroys such temporaries twice.
        const auto initiation = [state = state_](auto handler) { state->wait(std::move(handler)); };
        if constexpr (std::is_void_v<T>) {
            co_await asio::async_initiate<decltype(use_awaitable), void(std::exception_ptr)>(initiation, use_awaitable);
        } else {
            co_return co_await asio::async_initiate<decltype(use_awaitable), void(std::exception_ptr, T)>(initiation,
                                                                                                        use_awaitable);
        }
    }

private:
    std::shared_ptr<detail::task_state<value_type>> state_;
};

}  // namespace duplex
