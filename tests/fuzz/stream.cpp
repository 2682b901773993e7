// A whole duplex::ws::stream, server or client, fed arbitrary bytes over an in-memory transport, after a
// completed handshake or with the handshake itself fuzzed. The stream receives until the peer's close
// or an error (optionally echoing what it receives), and then:
// - it finished: the io_context ran out of ready work only after the driver ended (no hang);
// - it delivered data, or the peer's close (then our close succeeds), or a websocket_error, never any
//   other exception; delivered text is valid UTF-8 up to every point it was delivered;
// - what it wrote is a valid head and then valid frames in its role: masking, no reserved bits, control
//   frames short and whole, a close frame with a valid code and UTF-8 reason, nothing after it, and the
//   close code that matches the error it failed with;
// - what it wrote stays proportional to what it read (memory is bounded).
//
// Input: two configuration bytes, then the peer's bytes. With the canned handshake, a valid upgrade
// request (server) or response (client) goes before them. In a response, "{accept}" stands for the
// Sec-WebSocket-Accept of the key the client sent.
#include <duplex/websocket/stream.hpp>

#include "fuzz_support.hpp"
#include "memory_stream.hpp"

#include <cstring>
#include <string>
#include <vector>

using namespace duplex;
using duplex::ws::role;

namespace {

constexpr std::string_view canned_request =
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
constexpr std::string_view canned_response =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: {accept}\r\n\r\n";
constexpr std::string_view accept_marker = "{accept}";

enum class api { receive_small, receive, receive_message, echo };

struct config {
    role side = role::server;
    bool canned_handshake = true;
    api use = api::receive_small;
    std::size_t buffer_size = 16;
    ws::stream_options options;
    std::size_t read_chunk = SIZE_MAX;
    std::size_t write_chunk = SIZE_MAX;
};

config config_from(std::uint8_t a, std::uint8_t b) {
    constexpr std::size_t read_chunks[] = {SIZE_MAX, 1, 2, 3, 7, 64, 500, 4096};
    constexpr std::size_t write_chunks[] = {SIZE_MAX, 1, 7, 1000};
    constexpr std::size_t max_messages[] = {16 * 1024 * 1024, 0, 10, 1000};
    constexpr std::size_t buffer_sizes[] = {4096, 1, 16, 300};
    config c;
    c.side = (a & 1) ? role::client : role::server;
    c.canned_handshake = (a & 2) == 0;
    c.use = static_cast<api>((a >> 2) & 3);
    c.read_chunk = read_chunks[(a >> 4) & 7];
    c.options.receive_buffer_size = (a & 0x80) ? 4096 : 256;
    c.options.max_message_size = max_messages[b & 3];
    c.write_chunk = write_chunks[(b >> 2) & 3];
    if (b & 0x10) c.options.send_queue_high_water = 64;
    if (b & 0x20) c.options.direct_write_threshold = 32;
    c.buffer_size = c.use == api::receive_small ? 16 : buffer_sizes[b >> 6];
    return c;
}

struct outcome {
    bool finished = false;
    bool opened = false;
    std::error_code error;                  // the websocket_error the connection ended with
    std::optional<close_status> peer_close;  // the close the peer sent, when it did
    std::string peer_close_reason;
    std::size_t delivered = 0;
};

using fuzzed_stream = ws::stream<test::memory_stream>;

// Checks one delivered piece; `message` collects the current message (bounded by the size limit).
void check_piece(const receive_result& r, const config& c, std::string& message, const std::byte* data) {
    FUZZ_CHECK(r.message_type == message_type::text || r.message_type == message_type::binary);
    message.append(reinterpret_cast<const char*>(data), r.count);
    FUZZ_CHECK(message.size() <= c.options.max_message_size);
    if (r.message_type == message_type::text) {
        const auto verdict = fuzz::reference_utf8({reinterpret_cast<const std::uint8_t*>(message.data()), message.size()});
        FUZZ_CHECK(!verdict.failure);
        if (r.end_of_message) FUZZ_CHECK(verdict.complete);
    }
    if (r.end_of_message) message.clear();
}

awaitable<void> drive(fuzzed_stream s, config c, outcome& out) {
    std::error_code ec;
    try {
        if (c.side == role::server) {
            auto request = co_await s.read_request();
            co_await s.accept(request);
        } else {
            co_await s.handshake("example.com", "/chat");
        }
    } catch (const websocket_error& e) {
        ec = e.code();
    }
    if (ec) {
        out.error = ec;
        out.finished = true;
        co_return;
    }
    out.opened = true;
    FUZZ_CHECK(s.state() == websocket_state::open);

    std::vector<std::byte> buffer(c.buffer_size);
    std::string message, whole;
    const std::size_t whole_limit = 2000;
    for (int step = 0; step < 1'000'000; ++step) {
        receive_result r;
        try {
            if (c.use == api::receive_message) r = co_await s.receive_message(whole, whole_limit);
            else r = co_await s.receive(asio::buffer(buffer));
        } catch (const websocket_error& e) {
            ec = e.code();
        }
        if (ec) break;
        if (r.close_status) {
            FUZZ_CHECK(r.message_type == message_type::close);
            // receive_message hands over what it gathered of an unfinished message with the close.
            FUZZ_CHECK(r.count == (c.use == api::receive_message ? whole.size() : 0));
            out.peer_close = r.close_status;
            out.peer_close_reason = r.close_status_description;
            break;
        }
        out.delivered += r.count;
        if (c.use == api::receive_message) {
            FUZZ_CHECK(r.end_of_message && r.count == whole.size());
            FUZZ_CHECK(whole.size() <= std::min(whole_limit, c.options.max_message_size));
            check_piece(r, c, message, reinterpret_cast<const std::byte*>(whole.data()));
            continue;
        }
        FUZZ_CHECK(r.count <= buffer.size());
        check_piece(r, c, message, buffer.data());
        if (c.use != api::echo) continue;
        try {
            co_await s.send(asio::buffer(buffer.data(), r.count), r.message_type, r.end_of_message);
        } catch (const websocket_error& e) {
            ec = e.code();
        }
        if (ec) break;
    }
    if (out.peer_close) {
        FUZZ_CHECK(s.state() == websocket_state::close_received);
        co_await s.close(*out.peer_close, out.peer_close_reason);
        FUZZ_CHECK(s.state() == websocket_state::closed);
    } else {
        FUZZ_CHECK(ec);  // the loop is bounded far above what any input can hold
        FUZZ_CHECK(s.state() == websocket_state::aborted);
    }
    out.error = ec;
    out.finished = true;
}

// The written bytes after the HTTP head: whole frames, valid in our role. Returns the code of our close
// frame (empty for a close without a code), or nullopt when we sent none. When the connection broke, the
// transport was closed at once, possibly in the middle of writing a frame: then the last may be cut.
std::optional<std::optional<std::uint16_t>> check_frames(std::span<const std::byte> bytes, role side, bool broken) {
    std::optional<std::optional<std::uint16_t>> close;
    bool in_message = false;
    while (!bytes.empty()) {
        FUZZ_CHECK(!close);  // nothing after our close frame
        ws::frame_header h;
        const auto decoded = ws::decode_header(bytes.data(), bytes.size(), h);
        const bool whole = decoded.status == ws::decode_status::ok && bytes.size() - decoded.header_size >= h.payload_length;
        if (!whole && broken && decoded.status != ws::decode_status::length_too_large) break;
        FUZZ_CHECK(whole);
        FUZZ_CHECK(h.masked == (side == role::client));
        FUZZ_CHECK(!h.rsv1 && !h.rsv2 && !h.rsv3);
        FUZZ_CHECK(ws::is_known(h.op));
        std::vector<std::byte> payload(bytes.begin() + static_cast<std::ptrdiff_t>(decoded.header_size),
                                       bytes.begin() + static_cast<std::ptrdiff_t>(decoded.header_size + h.payload_length));
        if (h.masked) ws::apply_mask(payload.data(), payload.size(), h.key);
        if (ws::is_control(h.op)) {
            FUZZ_CHECK(h.fin && h.payload_length <= ws::max_control_payload);
            if (h.op == ws::opcode::close) {
                close_status failure{};
                const auto parsed = ws::parse_close_payload(payload.data(), payload.size(), failure);
                FUZZ_CHECK(parsed.has_value());
                close.emplace();
                if (parsed->status != close_status::empty) *close = static_cast<std::uint16_t>(parsed->status);
            }
        } else {
            FUZZ_CHECK((h.op == ws::opcode::continuation) == in_message);
            in_message = !h.fin;
        }
        bytes = bytes.subspan(decoded.header_size + h.payload_length);
    }
    return close;
}

void check_output(const test::memory_stream::state& transport, const config& c, const outcome& out) {
    const std::string_view written(reinterpret_cast<const char*>(transport.output.data()), transport.output.size());
    // What we write stays proportional to what we read: every frame we send answers a piece received
    // (at worst a 14-byte header for each byte, echoed from reads of one byte) or a ping.
    FUZZ_CHECK(written.size() <= 16 * transport.input.size() + 4096);
    const auto head_end = written.find("\r\n\r\n");
    if (!out.opened) {
        // A refused handshake: a server answered with an error status (or could not), a client stopped.
        if (c.side == role::server && !written.empty()) {
            FUZZ_CHECK(written.starts_with("HTTP/1.1 4") || written.starts_with("HTTP/1.1 5"));
        }
        FUZZ_CHECK(out.error == websocket_errc::handshake_failed || out.error == websocket_errc::connection_closed_prematurely);
        return;
    }
    FUZZ_CHECK(head_end != std::string_view::npos);
    FUZZ_CHECK(written.starts_with(c.side == role::server ? "HTTP/1.1 101 " : "GET /chat HTTP/1.1\r\n"));
    const auto frames = std::span(transport.output).subspan(head_end + 4);
    const auto our_close = check_frames(frames, c.side, out.error == websocket_errc::connection_closed_prematurely);

    if (out.peer_close) {
        // We answered the peer's close with the same code (RFC 6455 §5.5.1).
        FUZZ_CHECK(our_close.has_value());
        if (*out.peer_close == close_status::empty) FUZZ_CHECK(!our_close->has_value());
        else FUZZ_CHECK(*our_close == static_cast<std::uint16_t>(*out.peer_close));
        return;
    }
    const auto expected = out.error == websocket_errc::protocol_error         ? 1002
                          : out.error == websocket_errc::invalid_payload_data ? 1007
                          : out.error == websocket_errc::message_too_big      ? 1009
                                                                              : 0;
    if (expected) {
        FUZZ_CHECK(our_close.has_value() && our_close->has_value());
        FUZZ_CHECK(**our_close == expected);
    } else {
        FUZZ_CHECK(out.error == websocket_errc::connection_closed_prematurely);
        FUZZ_CHECK(!our_close.has_value());
    }
}

void replace_marker(std::vector<std::byte>& bytes, std::size_t from, std::string_view accept) {
    auto text = [&] { return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()); };
    for (auto at = text().find(accept_marker, from); at != std::string_view::npos;
         at = text().find(accept_marker, at + accept.size())) {
        const auto* a = reinterpret_cast<const std::byte*>(accept.data());
        bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                    bytes.begin() + static_cast<std::ptrdiff_t>(at + accept_marker.size()));
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), a, a + accept.size());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto a = in.byte();
    const auto b = in.byte();
    const auto c = config_from(a, b);
    const auto peer_bytes = in.rest();

    auto transport = std::make_shared<test::memory_stream::state>();
    if (c.canned_handshake) {
        const auto head = c.side == role::server ? canned_request : canned_response;
        const auto* h = reinterpret_cast<const std::byte*>(head.data());
        transport->input.assign(h, h + head.size());
    }
    const auto* p = fuzz::as_bytes(peer_bytes.data());
    transport->input.insert(transport->input.end(), p, p + peer_bytes.size());
    transport->read_chunk = c.read_chunk;
    transport->write_chunk = c.write_chunk;
    if (c.side == role::client) {
        // The first read comes after the request is written: answer its key.
        transport->before_read = [done = false](test::memory_stream::state& s) mutable {
            if (done) return;
            done = true;
            const std::string_view written(reinterpret_cast<const char*>(s.output.data()), s.output.size());
            constexpr std::string_view field = "Sec-WebSocket-Key: ";
            const auto at = written.find(field);
            FUZZ_CHECK(at != std::string_view::npos);
            replace_marker(s.input, s.read_position, ws::handshake::compute_accept(written.substr(at + field.size(), 24)));
        };
    }

    outcome out;
    {
        asio::io_context io;
        fuzzed_stream s(test::memory_stream(io.get_executor(), transport), c.side, c.options);
        asio::co_spawn(io, drive(s, c, out), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& unexpected) {
                std::fprintf(stderr, "unexpected exception: %s\n", unexpected.what());
            }
            fuzz::property_failed("only websocket_error may end a stream operation", __FILE__, __LINE__);
        });
        // Bounded by steps, not time: every transport operation completes at once, so running out of
        // ready work before the driver ends means the stream waits for something that never comes.
        for (std::size_t steps = 0; !out.finished; ++steps) {
            FUZZ_CHECK(steps < 10'000'000);
            const auto ran = io.poll_one();
            if (ran == 0 && !out.finished) fuzz::property_failed("the stream hangs", __FILE__, __LINE__);
        }
        io.poll();
    }
    if (c.canned_handshake) FUZZ_CHECK(out.opened);
    check_output(*transport, c, out);
    return 0;
}
