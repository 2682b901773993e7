// duplex — common aliases for the Asio pieces every layer uses.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

namespace duplex {

// Every asynchronous duplex call returns an awaitable on Asio's any_io_executor.
template <class T = void>
using awaitable = asio::awaitable<T>;

using asio::use_awaitable;

namespace detail {
// Completion token for operations whose errors duplex inspects itself instead of catching.
inline constexpr auto use_nothrow_awaitable = asio::experimental::as_tuple(asio::use_awaitable);
}  // namespace detail

}  // namespace duplex
