// The client's HTTP/2 connection (client/http2_connection.hpp) fed arbitrary server bytes over an in-memory
// transport, driven as duplex::connect drives it (client/impl/connect.ipp): start(), and when the server's
// SETTINGS allow extended CONNECT, open() for ws://127.0.0.1/ws, then release(); on the WebSocket, one text
// message out, then receive until the server's close (answered) or an error. nghttp2 parses; what is fuzzed
// is our side of it: the session's callbacks, the wait for SETTINGS and for the response, its head checked
// as a WebSocket's answer, the tunnel under ws::stream, the connection's end. Properties:
// - it finishes: the driving coroutine completes and the io_context then runs out of work, no operation
//   left pending, not even a timer (no hang: no wait that only a timeout would end, no stream or
//   connection left waiting);
// - what it wrote is the client magic, then whole HTTP/2 frames no longer than the default
//   SETTINGS_MAX_FRAME_SIZE, of RFC 9113's types, the first its SETTINGS; HEADERS (one) and DATA only on
//   stream 1, the one WebSocket's;
// - nothing is thrown but websocket_error or std::system_error (the server's doing).
//
// Input: one configuration byte, then the server's bytes.
//   bit 0 set: the server's preface (a SETTINGS with SETTINGS_ENABLE_CONNECT_PROTOCOL = 1) is not prepended;
//   bits 1-3: read chunk size, as in http2_connection;
//   bit 4: the client offers permessage-deflate;
//   bit 5: paced: each read waits until the client has nothing else to do and takes at most one HTTP/2
//          frame (fuzz::paced_stream), so the server answers as across a network, after the request went;
//          unpaced, the server's bytes come as fast as they are read, a response possibly before its
//          request is out (nghttp2 then ends the connection: HEADERS on an idle stream).
#include <duplex/client/http2_connection.hpp>
#include <duplex/client/uri.hpp>

#include "fuzz_support.hpp"
#include "http2_fuzz.hpp"
#include "memory_stream.hpp"

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace duplex;

namespace {

using connection_type = client::detail::http2_connection<fuzz::paced_stream>;

// The server's preface: SETTINGS { SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) = 1 }.
constexpr std::array<std::uint8_t, 15> server_preface = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 0x8, 0, 0, 0, 1};

// One message out, then everything in until the server's close, which is answered.
awaitable<void> talk(websocket ws) {
    co_await ws.send("hello");
    std::array<std::byte, 64> buffer;
    for (;;) {
        auto r = co_await ws.receive(asio::buffer(buffer));
        if (r.close_status) {
            co_await ws.close(*r.close_status, r.close_status_description);
            co_return;
        }
    }
}

// As connect() does: the opener holds the connection until open() is over, whatever its outcome.
awaitable<websocket> open(connection_type& connection, const client::websocket_uri& uri, const connect_options& options) {
    struct release_on_exit {
        connection_type& connection;
        ~release_on_exit() { connection.release(); }
    } release{connection};
    co_return co_await connection.open(uri, options);
}

// The client's whole life; `finished` once it is over. What the server may cause is caught here.
awaitable<void> run_client(std::shared_ptr<connection_type> connection, const connect_options& options, bool& finished) {
    static const auto uri = *client::parse_websocket_uri("ws://127.0.0.1/ws");
    try {
        if (co_await connection->start(options.stream.handshake_timeout)) co_await talk(co_await open(*connection, uri, options));
        else connection->release();
    } catch (const websocket_error&) {
    } catch (const std::system_error&) {
    }
    finished = true;
}

void check_no_exception(std::exception_ptr e) {
    if (e) fuzz::property_failed("the client threw something other than websocket_error or std::system_error", __FILE__, __LINE__);
}

// The magic, then our frames; HEADERS (our one request) and DATA only on stream 1.
void check_output(const std::vector<std::byte>& out) {
    FUZZ_CHECK(out.size() >= fuzz::client_magic.size() &&
               std::memcmp(out.data(), fuzz::client_magic.data(), fuzz::client_magic.size()) == 0);
    int requests = 0;
    fuzz::check_http2_frames(std::span(out).subspan(fuzz::client_magic.size()), true, [&](const fuzz::http2_frame_head& h) {
        if (h.type == 0x0 || h.type == 0x1) FUZZ_CHECK(h.stream_id == 1);
        if (h.type == 0x1) FUZZ_CHECK(++requests == 1);
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto input = fuzz::take_peer_input(data, size, {fuzz::as_text(server_preface)});
    const auto config = input.config;
    const auto& transport = input.transport;

    bool finished = false;
    {
        asio::io_context io(1);
        connect_options options;
        options.stream.max_message_size = 4096;
        options.keep_alive_interval = std::chrono::steady_clock::duration::zero();
        if (config & 0x10) options.dangerous_deflate = deflate::options{};
        options.http2.initial_stream_window_size = 1 << 16;
        options.http2.connection_window_size = 1 << 17;
        options.http2.max_header_list_size = 4096;
        const auto pace = std::make_shared<fuzz::paced_stream::pace>(io.get_executor(), transport, (config & 0x20) != 0);
        asio::co_spawn(io, run_client(std::make_shared<connection_type>(fuzz::paced_stream(pace), options.http2, "fuzz"), options, finished),
                       check_no_exception);
        fuzz::run_to_end(io, pace.get());
        FUZZ_CHECK(finished);
        FUZZ_CHECK(io.stopped());  // no operation left pending, not even a timer
        check_output(transport->output);
    }
    return 0;
}
