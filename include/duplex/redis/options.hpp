// duplex::redis::options — timeouts, health checks, reconnection and limits of a Redis connection
// (publisher.hpp, subscriber.hpp), with Boost.Redis' defaults where it has one.
#pragma once

#include <duplex/app/logging.hpp>
#include <duplex/redis/resp.hpp>
#include <duplex/tls/context.hpp>

#include <chrono>
#include <cstddef>

namespace duplex::redis {

using namespace std::chrono_literals;

struct options {
    // TCP connect, TLS handshake, AUTH and SELECT, all of them, within this.
    std::chrono::steady_clock::duration connect_timeout = 5s;
    // PING when nothing was written for this long; the connection is declared dead (closed, then
    // reconnected) when a reply is due and nothing was read for twice this long.
    std::chrono::steady_clock::duration health_check_interval = 2s;
    // Waits between reconnection attempts: the first, doubled after each failure up to the last.
    std::chrono::steady_clock::duration reconnect_wait_min = 100ms;
    std::chrono::steady_clock::duration reconnect_wait_max = 2s;
    // Commands queued and not yet written, at most (publisher): beyond it a publish is dropped and
    // counted as lost instead of queuing without bound.
    std::size_t max_queued_bytes = 16u << 20;
    // For rediss:// URLs.
    tls::client_options tls{};
    resp::limits limits{};
    // Connection events (connected, lost, reconnected, messages lost); empty: lines on stderr.
    log_sink log{};
};

}  // namespace duplex::redis
