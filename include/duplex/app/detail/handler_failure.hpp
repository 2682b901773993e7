// How a connection of the app host logs a handler's exception, over HTTP/1.1 and HTTP/2 alike: with the
// request and the client it came from. A WebSocket that its peer ended (it vanished, broke the protocol,
// read too slowly) is the peer's doing, not the handler's: debug. Anything else is a failure of the
// handler: error.
#pragma once

#include <duplex/app/detail/app_core.hpp>
#include <duplex/http/request.hpp>
#include <duplex/websocket/error.hpp>

#include <exception>
#include <string>
#include <system_error>

namespace duplex::detail {

inline bool ended_by_peer(std::error_code ec) noexcept {
    if (ec.category() != websocket_category()) return false;
    switch (static_cast<websocket_errc>(ec.value())) {
    case websocket_errc::protocol_error:
    case websocket_errc::invalid_payload_data:
    case websocket_errc::message_too_big:
    case websocket_errc::connection_closed_prematurely:
    case websocket_errc::close_timeout:
    case websocket_errc::keep_alive_timeout:
    case websocket_errc::frame_too_big:
    case websocket_errc::too_many_fragments:
    case websocket_errc::send_queue_full:
    case websocket_errc::send_timeout: return true;
    default: return false;
    }
}

inline void report_handler_failure(const app_core& core, std::exception_ptr failure, const http::request& request,
                                   bool websocket, const std::string& peer) {
    auto level = log_level::error;
    std::string what;
    try {
        std::rethrow_exception(failure);
    } catch (const websocket_error& e) {
        if (websocket && ended_by_peer(e.code())) level = log_level::debug;
        what = e.what();
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "a non-standard exception";
    }
    if (!core.logs(level)) return;
    core.log(level, (websocket ? "WebSocket handler for " : "request ") + request.method + " " + request.target +
                        " from " + peer + " failed" + (websocket ? "" : " (500)") + ": " + what);
}

// "address:port" of a client, for the log.
inline std::string endpoint_text(const asio::ip::tcp::endpoint& endpoint) {
    const auto address = endpoint.address().to_string();
    return (endpoint.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(endpoint.port());
}

}  // namespace duplex::detail
