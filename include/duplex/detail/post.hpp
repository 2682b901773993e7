// Whether the calling thread runs an executor, and posting a function with memory from the per-thread
// handler cache (handler_allocator.hpp), so that the
// stream's own posts (the auto-cork flush, a completion of a token form) allocate nothing per message.
//
// Through any_io_executor a post is wrapped once more in a function object from Asio's small recycling
// cache, whatever the handler's allocator, and the io_context's operation comes from another such cache:
// with many connections on a thread those two blocks are evicted on every message. Posted to the
// io_context's own executor, the operation takes the handler's allocator, ours. (Asio 1.22's target<T>()
// does not check the type, so a strand would pass for it: compare the type first.)
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/handler_allocator.hpp>

#include <typeinfo>
#include <utility>

namespace duplex::detail {

using io_executor = asio::io_context::executor_type;
// The io_context executor that keeps its io_context busy (an operation's work guard).
using tracked_io_executor = asio::io_context::basic_executor_type<std::allocator<void>, 4>;

// Whether the calling thread runs `executor` now: inside a handler of the strand, or in a thread of the
// io_context. An executor of another kind cannot say, and counts as elsewhere.
template <class Executor>
bool running_in(const Executor& executor) noexcept {
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
        using io_strand = asio::strand<io_executor>;
        using any_strand = asio::strand<asio::any_io_executor>;
        // Asio 1.22's target<T>() does not check the type: compare it first. type_info's == compares the
        // names as strings when they are not the same object; within one program they are, so those
        // pointers are compared first, for every candidate, before any string.
        const auto& type = executor.target_type();
        const char* name = type.name();
        const auto is = [&](const std::type_info& candidate, bool exact) {
            return exact ? name == candidate.name() : type == candidate;
        };
        for (const bool exact : {true, false}) {
            if (is(typeid(io_executor), exact)) return executor.template target<io_executor>()->running_in_this_thread();
            if (is(typeid(tracked_io_executor), exact))
                return executor.template target<tracked_io_executor>()->running_in_this_thread();
            if (is(typeid(io_strand), exact)) return executor.template target<io_strand>()->running_in_this_thread();
            if (is(typeid(any_strand), exact)) return executor.template target<any_strand>()->running_in_this_thread();
        }
        return false;
    } else if constexpr (requires { executor.running_in_this_thread(); }) {
        return executor.running_in_this_thread();
    } else {
        return false;
    }
}

// The io_context behind an executor, found once: running_in() is asked on every operation of a socket,
// and comparing type_info is a string comparison when the types differ; an io_context's executor is
// asked directly, which reads one thread-local.
class executor_home {
public:
    template <class Executor>
    explicit executor_home(const Executor& executor) noexcept {
        if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
            const auto& type = executor.target_type();
            if (type == typeid(io_executor)) context_ = &executor.template target<io_executor>()->context();
            else if (type == typeid(tracked_io_executor))
                context_ = &executor.template target<tracked_io_executor>()->context();
        } else if constexpr (std::is_same_v<Executor, io_executor> || std::is_same_v<Executor, tracked_io_executor>) {
            context_ = &executor.context();
        }
    }
    // Null when the executor is not an io_context's own (a strand, another kind).
    asio::io_context* io_context() const noexcept { return context_; }

private:
    asio::io_context* context_ = nullptr;
};

// Posts `bound` (a handler with its own allocator) to the io_context's executor itself where
// `executor` wraps one, so that the operation takes the handler's memory and nothing else.
template <class Executor, class Handler>
void post_bound(const Executor& executor, Handler&& bound) {
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
        const auto& type = executor.target_type();
        if (type == typeid(io_executor)) {
            asio::post(*executor.template target<io_executor>(), std::forward<Handler>(bound));
            return;
        }
        if (type == typeid(tracked_io_executor)) {
            asio::post(*executor.template target<tracked_io_executor>(), std::forward<Handler>(bound));
            return;
        }
    }
    asio::post(executor, std::forward<Handler>(bound));
}

template <class Executor, class Function>
void post_recycled(const Executor& executor, Function&& function) {
    post_bound(executor, asio::bind_allocator(handler_allocator<void>{}, std::forward<Function>(function)));
}

}  // namespace duplex::detail
