// The options of duplex::app: threads, connection limits, timeouts, request limits, and the limits of
// every accepted WebSocket.
#pragma once

#include <duplex/app/logging.hpp>
#include <duplex/http/parser.hpp>
#include <duplex/http2/limits.hpp>
#include <duplex/websocket/options.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace duplex {

struct app_options {
    // Shown as "<name> listening on <url>"; by default the program's file name.
    std::string name = "duplex";
    // Worker threads, each running an io_context of its own (connections are handed to them round-robin
    // at accept, and stay there); 0 means one per CPU this process may use (its affinity mask and cgroup
    // CPU quota, as .NET's Environment.ProcessorCount).
    unsigned worker_threads = 0;
    // Connections beyond this are answered 503 and closed.
    std::size_t max_connections = 10'000;
    // A request head (and its body) must arrive in full within this once it has begun: a client that
    // trickles its request (slowloris) is disconnected. A response write that makes no progress for this
    // long (the client stopped reading) is abandoned too; a slow download that keeps moving is not.
    std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(10);
    // An HTTP keep-alive connection waiting for its next request is closed after this.
    std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(120);
    // On SIGINT/SIGTERM or stop(): how long handlers get to finish after every WebSocket was sent 1001.
    std::chrono::steady_clock::duration shutdown_timeout = std::chrono::seconds(5);
    // A request body larger than this is answered 413.
    std::size_t max_request_body_size = 1024 * 1024;
    // 414 / 431 limits of request heads.
    http::parser_limits http_limits{};
    // HTTP/2 connections (https:// through ALPN h2, see https_options::protocols, and h2c below): the
    // SETTINGS advertised and the protections against hostile peers (http2/limits.hpp).
    duplex::http2_limits http2_limits{};
    // http:// endpoints also accept HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3: a client that opens
    // with the HTTP/2 connection preface), for tests and for proxies in front of the app. Off by default.
    bool http2_prior_knowledge = false;
    // Limits and timeouts of accepted WebSockets (receive_buffer_size comes from websocket_options).
    ws::stream_options websocket_limits{};
    // What the host logs, and where (app/logging.hpp).
    logging_options logging{};
};

}  // namespace duplex
