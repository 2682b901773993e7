// What the kernel still holds for the peer on the socket under a transport: bytes written but not yet
// acknowledged by the peer, or not yet sent (Linux's SIOCOUTQ). The send timeout reads it to see a
// peer that takes our bytes steadily even while no write of ours completes: with megabytes in the
// socket's send buffer, a write waits until much of it has drained.
#pragma once

#include <cstddef>
#include <optional>

#if defined(__linux__)
#include <linux/sockios.h>
#include <sys/ioctl.h>
#endif

namespace duplex::detail {

template <class Transport>
std::optional<std::size_t> bytes_not_yet_acknowledged(Transport& transport) noexcept {
#if defined(__linux__)
    if constexpr (requires { transport.lowest_layer().native_handle(); }) {
        int queued = 0;
        if (::ioctl(transport.lowest_layer().native_handle(), SIOCOUTQ, &queued) == 0 && queued >= 0)
            return static_cast<std::size_t>(queued);
    }
#endif
    (void)transport;
    return std::nullopt;
}

}  // namespace duplex::detail
