// use_nothrow_awaitable for the operations a connection starts on every message, with their memory from
// duplex's per-thread handler cache (handler_allocator.hpp) instead of Asio's two blocks per thread: an
// HTTP/2 connection's read, its write and its writer's wake-up are pending at once beside every stream's
// own operations, and with Asio's cache they evict each other and go to the heap on every message.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/handler_allocator.hpp>

#include <asio/bind_allocator.hpp>

namespace duplex::detail {

// A new token per call: Asio 1.22 accepts an allocator_binder token as an rvalue only.
inline auto recycling_nothrow_awaitable() {
    return asio::bind_allocator(handler_allocator<void>{}, use_nothrow_awaitable);
}

}  // namespace duplex::detail
