// Sends a file response body (http::file_body) to the client a chunk at a time: read with pread into one
// 64 KiB buffer, then written with the transport's own writes, over TCP and TLS alike. A download holds
// that buffer while it runs and nothing else, however large the file, and the event loop does other
// work between chunks. Reads come from the page cache (the file is opened with sequential read-ahead);
// a chunk that is not cached yet costs its thread one disk read.
#pragma once

#include <duplex/config.hpp>
#include <duplex/http/file_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace duplex::detail {

inline constexpr std::size_t file_chunk_size = 64 * 1024;

// Writes the selected bytes of `file`; `before_write` runs before every write (the connection arms its
// deadline there). False when the file could not be read to the end of the range (it shrank) or a
// write failed: the response is then incomplete and the connection must close.
template <class Transport, class BeforeWrite>
awaitable<bool> send_file(Transport& transport, const http::file_body& file, BeforeWrite before_write) {
    const auto chunk = std::make_unique_for_overwrite<std::byte[]>(file_chunk_size);
    const std::uint64_t end = file.offset() + file.size();
    for (std::uint64_t position = file.offset(); position < end;) {
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(file_chunk_size, end - position));
        const auto got = file.read_at(position, std::span(chunk.get(), wanted));
        if (got <= 0) co_return false;
        const auto size = static_cast<std::size_t>(got);
        for (std::size_t written = 0; written < size;) {
            before_write();
            auto [ec, n] = co_await transport.async_write_some(asio::buffer(chunk.get() + written, size - written),
                                                               use_nothrow_awaitable);
            if (ec) co_return false;
            written += n;
        }
        position += size;
    }
    co_return true;
}

}  // namespace duplex::detail
