// A completion handler of any type behind one type, so that the type-erased duplex::websocket can take
// Asio completion tokens through a virtual call: the handler moves into a block from the per-thread
// handler cache (no heap allocation in steady state), with its associated executor (kept busy while the
// operation is pending, as Asio's own operations do) and its cancellation slot.
//
// One-shot: complete() or post() consumes it. Completing after asynchronous work dispatches to the
// handler's executor (inline when the calling thread runs it); completing from within the initiating
// call posts (never inline, Asio's rule). Either way with memory from the handler cache.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/handler_allocator.hpp>
#include <duplex/detail/post.hpp>

#include <memory>
#include <new>
#include <tuple>
#include <utility>

namespace duplex::detail {

template <class Signature>
class erased_handler;

template <class... Args>
class erased_handler<void(Args...)> {
public:
    erased_handler() = default;

    template <class Handler>
    explicit erased_handler(Handler&& handler, const asio::any_io_executor& fallback) {
        using node_type = node<std::decay_t<Handler>>;
        void* memory = handler_memory_cache::allocate(sizeof(node_type));
        node_ = ::new (memory) node_type(std::forward<Handler>(handler), fallback);
    }
    erased_handler(erased_handler&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    erased_handler& operator=(erased_handler&& other) noexcept {
        if (this != &other) {
            reset();
            node_ = std::exchange(other.node_, nullptr);
        }
        return *this;
    }
    ~erased_handler() { reset(); }

    explicit operator bool() const noexcept { return node_ != nullptr; }

    // The handler's cancellation slot (unconnected when it has none).
    asio::cancellation_slot cancellation_slot() const noexcept { return node_->slot; }

    // After asynchronous work: runs the handler on its executor (inline when already there).
    void complete(Args... args) { std::exchange(node_, nullptr)->finish(false, std::move(args)...); }
    // From within the initiating call: the handler runs later, never inside it.
    void post(Args... args) { std::exchange(node_, nullptr)->finish(true, std::move(args)...); }

private:
    struct node_base {
        asio::cancellation_slot slot;
        virtual void finish(bool post, Args... args) = 0;
        virtual void destroy() noexcept = 0;

    protected:
        ~node_base() = default;
    };

    // The handler's executor, kept busy (outstanding work) while the operation is pending.
    template <class Executor>
    static auto tracked(const Executor& executor) {
        if constexpr (asio::execution::is_executor<Executor>::value)
            return asio::prefer(executor, asio::execution::outstanding_work.tracked);
        else
            return asio::executor_work_guard<Executor>(executor);
    }
    template <class Work>
    static auto executor_of(Work& work) {
        if constexpr (requires { work.get_executor(); }) return work.get_executor();
        else return work;
    }

    template <class Handler>
    struct node final : node_base {
        using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;

        node(Handler&& h, const asio::any_io_executor& fallback)
            : handler(std::move(h)), work(tracked(asio::get_associated_executor(handler, fallback))) {
            this->slot = asio::get_associated_cancellation_slot(handler);
        }

        void finish(bool post, Args... args) override {
            auto call = [h = std::move(handler), ... a = std::move(args)]() mutable { std::move(h)(std::move(a)...); };
            auto executor = executor_of(work);
            auto kept_busy = std::move(work);  // until the call is queued
            release();
            if (!post && running_in(executor)) std::move(call)();  // what dispatch would do, without its wrapper
            else post_recycled(executor, std::move(call));
        }
        void destroy() noexcept override { release(); }

        void release() noexcept {
            this->~node();
            handler_memory_cache::deallocate(this, sizeof(node));
        }

        Handler handler;
        decltype(tracked(std::declval<const executor_type&>())) work;
    };

    void reset() noexcept {
        if (node_) std::exchange(node_, nullptr)->destroy();
    }

    node_base* node_ = nullptr;
};

}  // namespace duplex::detail
