// duplex::task_completion_source<T> — ASP.NET's TaskCompletionSource for coroutines: a result that
// is set once, from any thread, and awaited by any number of coroutines, each resumed on its own
// executor. The seed uses it to keep a request alive while a background service owns its WebSocket.
#pragma once

#include <duplex/config.hpp>

#include <exception>
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
    virtual ~task_waiter() = default;
    virtual void complete(const task_outcome<T>& outcome) = 0;
};

template <class T, class Handler>
struct task_waiter_for final : task_waiter<T> {
    explicit task_waiter_for(Handler h) : handler(std::move(h)) {}

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
class task_state {
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
        {
            std::lock_guard lock(mutex_);
            if (outcome_.index() == 0) {
                waiters_.push_back(std::move(waiter));
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
