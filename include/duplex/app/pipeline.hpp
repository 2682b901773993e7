// The middleware pipeline of duplex::app (ASP.NET's RequestDelegate chain): a middleware takes the
// request's http_context and `next`, the rest of the pipeline, which it may call or not.
#pragma once

#include <duplex/app/http_context.hpp>
#include <duplex/config.hpp>

#include <cstddef>
#include <functional>
#include <vector>

namespace duplex {

class next;
using middleware = std::function<awaitable<void>(http_context&, next)>;
using request_handler = std::function<awaitable<void>(http_context&)>;

// The rest of the pipeline after the current middleware (ASP.NET's RequestDelegate `next`).
class next {
public:
    awaitable<void> operator()() const { return (*this)(*context_); }
    awaitable<void> operator()(http_context& ctx) const {
        if (index_ < pipeline_->size()) return (*pipeline_)[index_](ctx, next(*pipeline_, index_ + 1, ctx));
        return not_found(ctx);
    }

    next(const std::vector<middleware>& pipeline, std::size_t index, http_context& ctx) noexcept
        : pipeline_(&pipeline), index_(index), context_(&ctx) {}

private:
    // The end of the pipeline: nobody answered.
    static awaitable<void> not_found(http_context& ctx) {
        ctx.response.status_code = 404;
        co_return;
    }

    const std::vector<middleware>* pipeline_;
    std::size_t index_;
    http_context* context_;
};

}  // namespace duplex
