// The stream when its transport fails at every possible point (tests/support/fault_stream.hpp): each
// scenario runs with its n-th operation failing with connection_reset for n = 1, 2, … until a run ends
// before the n-th — counting reads and writes, reads only and writes only; failing for good (a reset) or
// just once; with the transport as it comes and in small pieces (so that failures land inside heads,
// frame headers and payloads). Every run must end in a clean websocket_error or complete, within its
// bound, with each operation completed exactly once, nothing left pending, the transport closed and let
// go of, the state no longer open, and whatever either end received intact and in order.
#include <duplex/websocket/stream.hpp>

#include <doctest/doctest.h>

#include "fault_stream.hpp"
#include "test_support.hpp"

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

using duplex::close_status;
using duplex::message_type;
using duplex::websocket_errc;
using duplex::websocket_state;
using duplex::ws::role;
using test::raw_frame;

namespace {

using faulty_stream = duplex::ws::stream<test::fault_stream>;

// What the raw peer saw.
struct peer_log {
    bool opened = false;
    std::vector<std::pair<std::uint8_t, std::string>> messages;  // complete data messages
    std::vector<std::string> pongs;
    std::optional<std::uint16_t> close_code;
    std::string close_reason;
};

// What the stream's side did.
struct stream_log {
    std::error_code error;  // the websocket_error it ended with
    std::vector<std::pair<message_type, std::string>> messages;
    websocket_state state_at_end = websocket_state::none;
    bool transport_open_at_end = true;
};

raw_frame frame(std::uint8_t op, std::string_view payload, bool fin = true, bool masked = true) {
    raw_frame f;
    f.opcode = op;
    f.fin = fin;
    f.masked = masked;
    f.payload = test::bytes(payload);
    return f;
}

std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed + i / 253) & 0xFF);
    return s;
}

const std::string medium_payload = pattern(5000, 1);
const std::string large_payload = pattern(40000, 2);  // a server echoes it by direct write (≥ 16 KiB)

// The data messages every scenario exchanges, in order: a text, a text in fragments (with a UTF-8
// sequence split between them), a binary over the receive buffer and one over the direct-write threshold.
const std::vector<std::pair<std::uint8_t, std::string>> exchanged = {
    {1, "hello"}, {1, "fragm\xC3\xA9nts"}, {2, medium_payload}, {2, large_payload}};

std::uint16_t code_of(const raw_frame& close) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(close.payload.at(0)) << 8) |
                                      std::to_integer<unsigned>(close.payload.at(1)));
}

void note_close(const raw_frame& f, peer_log& log) {
    if (f.payload.size() >= 2) {
        log.close_code = code_of(f);
        log.close_reason = test::text(f.payload).substr(2);
    } else {
        log.close_code = 1005;
    }
}

void close_socket(test::raw_peer& peer) {
    std::error_code ignored;
    peer.socket().close(ignored);
}

// The peers below never read again once they have seen the end of the stream: over a socket pair, Asio
// 1.22's reactor does not complete a read issued after it delivered end-of-file (no new readiness event
// comes), so such a read would hang the run.

// ---- the peer's opening handshake, either side ----

duplex::awaitable<bool> open_as_client(test::raw_peer& peer) {
    const auto request = test::bytes("GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    co_await peer.write(request);
    const auto head = co_await peer.read_head();
    co_return head.starts_with("HTTP/1.1 101");
}

duplex::awaitable<bool> open_as_server(test::raw_peer& peer) {
    const auto head = co_await peer.read_head();
    const auto at = head.find("Sec-WebSocket-Key: ");
    if (at == std::string::npos || head.size() < at + 19 + 24) co_return false;
    const auto accept = duplex::ws::handshake::compute_accept(head.substr(at + 19, 24));
    const auto response = test::bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Accept: " + accept + "\r\n\r\n");
    co_await peer.write(response);
    co_return true;
}

duplex::awaitable<bool> open_peer(test::raw_peer& peer, role stream_role) {
    if (stream_role == role::server) co_return co_await open_as_client(peer);
    co_return co_await open_as_server(peer);
}

// ---- scenario 1: a server echoes, the peer closes ----

duplex::awaitable<void> echo_server(faulty_stream& stream, stream_log&) {
    co_await stream.accept();
    std::vector<std::byte> buffer(64 * 1024);
    auto r = co_await stream.receive(asio::buffer(buffer));
    while (!r.close_status) {
        co_await stream.send(asio::buffer(buffer.data(), r.count), r.message_type, r.end_of_message);
        r = co_await stream.receive(asio::buffer(buffer));
    }
    co_await stream.close(*r.close_status, r.close_status_description);
}

// A client that sends every message at once (pings between fragments and after the last), then its
// close, and reads the echoes, the pongs and the server's close up to the end of the connection.
duplex::awaitable<void> echo_client_peer(test::raw_peer& peer, peer_log& log) {
    log.opened = co_await open_as_client(peer);
    if (!log.opened) co_return;
    std::vector<raw_frame> frames;
    frames.push_back(frame(1, exchanged[0].second));
    frames.push_back(frame(1, "fragm\xC3", false));
    frames.push_back(frame(9, "between fragments"));
    frames.push_back(frame(0, "\xA9nts"));
    frames.push_back(frame(2, exchanged[2].second));
    frames.push_back(frame(2, exchanged[3].second));
    frames.push_back(frame(9, "after the last"));
    raw_frame close;
    close.opcode = 8;
    close.payload = test::close_payload(1000, "done");
    frames.push_back(close);
    for (const auto& f : frames) co_await peer.send(f);

    std::uint8_t type = 0;
    std::string partial;
    for (;;) {
        auto f = co_await peer.read_frame();
        if (!f) co_return;
        if (f->opcode == 0xA) {
            log.pongs.push_back(test::text(f->payload));
        } else if (f->opcode == 8) {
            note_close(*f, log);
            break;
        } else {
            if (f->opcode != 0) type = f->opcode;
            partial += test::text(f->payload);
            if (f->fin) log.messages.emplace_back(type, std::exchange(partial, {}));
        }
    }
    co_await peer.read_to_end();
}

void check_echo_server_clean_run(const stream_log& s, const peer_log& p) {
    CHECK_FALSE(s.error);
    CHECK(s.state_at_end == websocket_state::closed);
    CHECK(p.messages == exchanged);
    CHECK(p.pongs == std::vector<std::string>{"between fragments", "after the last"});
    CHECK(p.close_code == 1000);
    CHECK(p.close_reason == "done");
}

// ---- scenario 2: a client sends, the peer echoes, the client closes ----

duplex::awaitable<void> sending_client(faulty_stream& stream, stream_log& log) {
    co_await stream.handshake("test", "/ws");
    co_await stream.send(asio::buffer(exchanged[0].second), message_type::text);
    co_await stream.send(asio::buffer(std::string_view("fragm\xC3")), message_type::text, false);
    co_await stream.send(asio::buffer(std::string_view("\xA9nts")), message_type::text, true);
    co_await stream.send(asio::buffer(exchanged[2].second), message_type::binary);
    co_await stream.send(asio::buffer(exchanged[3].second), message_type::binary);
    for (std::size_t i = 0; i < exchanged.size(); ++i) {
        std::string message;
        const auto r = co_await stream.receive_message(message, 1 << 20);
        if (r.close_status) break;
        log.messages.emplace_back(r.message_type, std::move(message));
    }
    co_await stream.close(close_status::normal_closure, "bye");
}

// A server that pings first, echoes each message (the text ones in fragments with a ping between),
// answers the close with the same payload and half-closes as RFC 6455 asks of a server.
duplex::awaitable<void> echo_server_peer(test::raw_peer& peer, peer_log& log) {
    log.opened = co_await open_as_server(peer);
    if (!log.opened) co_return;
    const auto ping = frame(9, "first", true, false);
    co_await peer.send(ping);
    std::uint8_t type = 0;
    std::string partial;
    for (;;) {
        auto f = co_await peer.read_frame();
        if (!f) co_return;
        if (f->opcode == 0xA) {
            log.pongs.push_back(test::text(f->payload));
        } else if (f->opcode == 8) {
            note_close(*f, log);
            raw_frame close;
            close.opcode = 8;
            close.masked = false;
            close.payload = f->payload;
            co_await peer.send(close);
            std::error_code ignored;
            peer.socket().shutdown(test::local_socket::shutdown_send, ignored);
            break;
        } else {
            if (f->opcode != 0) type = f->opcode;
            partial += test::text(f->payload);
            if (!f->fin) continue;
            const auto message = std::exchange(partial, {});
            log.messages.emplace_back(type, message);
            std::vector<raw_frame> echo;
            if (type == 1 && message.size() >= 2) {
                echo.push_back(frame(1, std::string_view(message).substr(0, 1), false, false));
                echo.push_back(frame(9, "between", true, false));
                echo.push_back(frame(0, std::string_view(message).substr(1), true, false));
            } else {
                echo.push_back(frame(type, message, true, false));
            }
            for (const auto& e : echo) co_await peer.send(e);
        }
    }
    co_await peer.read_to_end();
}

void check_sending_client_clean_run(const stream_log& s, const peer_log& p) {
    CHECK_FALSE(s.error);
    CHECK(s.state_at_end == websocket_state::closed);
    CHECK(p.messages == exchanged);
    CHECK(p.pongs == std::vector<std::string>{"first", "between", "between"});
    CHECK(s.messages.size() == exchanged.size());
    CHECK(p.close_code == 1000);
    CHECK(p.close_reason == "bye");
}

// ---- scenario 3: our close is never answered (either role) ----

duplex::awaitable<void> unanswered_close(faulty_stream& stream, stream_log&, role r) {
    if (r == role::server)
        co_await stream.accept();
    else
        co_await stream.handshake("test", "/ws");
    co_await stream.close(close_status::normal_closure, "anyone?");
}

// Reads our close frame and then only waits for the end of the connection, never answering.
duplex::awaitable<void> silent_peer(test::raw_peer& peer, peer_log& log, role stream_role) {
    log.opened = co_await open_peer(peer, stream_role);
    if (!log.opened) co_return;
    auto f = co_await peer.read_frame();
    if (!f) co_return;
    if (f->opcode == 8) note_close(*f, log);
    co_await peer.read_to_end();
}

void check_unanswered_close_clean_run(const stream_log& s, const peer_log& p) {
    CHECK(s.error == make_error_code(websocket_errc::close_timeout));
    CHECK(s.state_at_end == websocket_state::aborted);
    CHECK(p.close_code == 1000);
}

// ---- scenario 4: the peer breaks the protocol (invalid UTF-8), the stream fails the connection ----

duplex::awaitable<void> receiving_stream(faulty_stream& stream, stream_log& log, role r) {
    if (r == role::server)
        co_await stream.accept();
    else
        co_await stream.handshake("test", "/ws");
    for (;;) {
        std::string message;
        const auto result = co_await stream.receive_message(message, 1 << 20);
        if (result.close_status) break;
        log.messages.emplace_back(result.message_type, std::move(message));
    }
}

// Sends a good message and then an invalid one; reads the stream's close and waits for its end.
duplex::awaitable<void> invalid_utf8_peer(test::raw_peer& peer, peer_log& log, role stream_role) {
    log.opened = co_await open_peer(peer, stream_role);
    if (!log.opened) co_return;
    const bool masked = stream_role == role::server;
    const auto good = frame(1, exchanged[0].second, true, masked);
    const auto bad = frame(1, "not \xC3\x28 UTF-8", true, masked);
    co_await peer.send(good);
    co_await peer.send(bad);
    auto f = co_await peer.read_frame();
    if (!f) co_return;
    if (f->opcode == 8) note_close(*f, log);
    co_await peer.read_to_end();
}

void check_invalid_utf8_clean_run(const stream_log& s, const peer_log& p) {
    CHECK(s.error == make_error_code(websocket_errc::invalid_payload_data));
    CHECK(s.state_at_end == websocket_state::aborted);
    CHECK(s.messages.size() == 1);
    CHECK(p.close_code == 1007);
}

// ---- running a scenario with a fault at every point ----

struct scenario {
    std::string name;
    role stream_role;
    std::function<duplex::awaitable<void>(faulty_stream&, stream_log&)> stream_side;
    std::function<duplex::awaitable<void>(test::raw_peer&, peer_log&)> peer_side;
    std::function<void(const stream_log&, const peer_log&)> check_clean_run;
    std::set<websocket_errc> expected_errors;  // what a run with an injected failure may end with
};

struct run_result {
    stream_log stream;
    peer_log peer;
    bool injected = false;
    std::size_t operations = 0;  // reads and writes the stream started
};

duplex::ws::stream_options quick_options() {
    duplex::ws::stream_options options;
    options.close_timeout = std::chrono::milliseconds(200);
    options.handshake_timeout = std::chrono::seconds(1);
    return options;
}

std::string_view outcome_name(std::error_code ec) {
    if (!ec) return "completed";
    if (ec.category() != duplex::websocket_category()) return "a foreign error";
    switch (static_cast<websocket_errc>(ec.value())) {
    case websocket_errc::connection_closed_prematurely: return "connection_closed_prematurely";
    case websocket_errc::close_timeout: return "close_timeout";
    case websocket_errc::handshake_failed: return "handshake_failed";
    case websocket_errc::invalid_payload_data: return "invalid_payload_data";
    default: return "another websocket_errc";
    }
}

std::string counting_name(test::fault_counting c) {
    switch (c) {
    case test::fault_counting::reads_and_writes: return "reads and writes";
    case test::fault_counting::reads_only: return "reads";
    case test::fault_counting::writes_only: return "writes";
    }
    return "?";
}

// One run with `settings`; checks everything a run must satisfy whatever the fault.
run_result run_once(const scenario& s, const test::fault_plan& settings) {
    auto plan = std::make_shared<test::fault_plan>(settings);
    run_result result;
    int stream_completions = 0, peer_completions = 0;
    std::string unexpected_exception;
    bool ran_out_of_work = false;
    {
        asio::io_context io;
        test::local_socket a(io), b(io);
        asio::local::connect_pair(a, b);

        auto stream_side = [&]() -> duplex::awaitable<void> {
            faulty_stream stream(test::fault_stream(std::move(a), plan), s.stream_role, quick_options());
            try {
                co_await s.stream_side(stream, result.stream);
            } catch (const duplex::websocket_error& e) {
                result.stream.error = e.code();
            }
            result.stream.state_at_end = stream.state();
            result.stream.transport_open_at_end = stream.next_layer().lowest_layer().is_open();
        };
        auto peer_side = [&]() -> duplex::awaitable<void> {
            test::raw_peer peer(std::move(b));
            try {
                co_await s.peer_side(peer, result.peer);
            } catch (const std::system_error&) {
                // The stream went away under the peer's write: the end of this connection, as expected.
            }
            close_socket(peer);
        };
        auto on_done = [&unexpected_exception](int& completions) {
            return [&unexpected_exception, counter = &completions](std::exception_ptr e) {
                ++*counter;
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    unexpected_exception = x.what();
                } catch (...) {
                    unexpected_exception = "a non-standard exception";
                }
            };
        };
        asio::co_spawn(io, stream_side(), on_done(stream_completions));
        asio::co_spawn(io, peer_side(), on_done(peer_completions));
        io.run_for(std::chrono::seconds(10));
        ran_out_of_work = io.stopped();
    }
    result.injected = plan->injected;
    result.operations = plan->reads + plan->writes;

    INFO(s.name, settings.max_read_size != 0 ? std::string(" in pieces") : std::string(), ": failing ",
         counting_name(settings.counting), " operation ", settings.fail_at,
         std::string(settings.sticky ? " (sticky)" : " (once)"), ", ", plan->reads, " reads, ", plan->writes,
         " writes; ended with ", std::string(outcome_name(result.stream.error)));
    REQUIRE_MESSAGE(stream_completions == 1, "the stream's side did not finish exactly once (hang or double completion)");
    REQUIRE_MESSAGE(peer_completions == 1, "the peer did not finish exactly once");
    CHECK_MESSAGE(unexpected_exception.empty(), "an exception other than websocket_error: ", unexpected_exception);
    CHECK_MESSAGE(ran_out_of_work, "work was left pending after both sides finished");
    CHECK_MESSAGE(plan->started == plan->completed, "transport operations started ", plan->started, ", completed ",
                  plan->completed);
    CHECK_MESSAGE(plan.use_count() == 1, "the stream still holds its transport after it was destroyed");
    CHECK_FALSE(result.stream.transport_open_at_end);
    if (result.stream.error) {
        CHECK(result.stream.error.category() == duplex::websocket_category());
        CHECK(result.stream.state_at_end == websocket_state::aborted);
    }
    // Whatever arrived, at either end, arrived intact and in order, however the connection ended.
    REQUIRE(result.peer.messages.size() <= exchanged.size());
    for (std::size_t i = 0; i < result.peer.messages.size(); ++i) CHECK(result.peer.messages[i] == exchanged[i]);
    REQUIRE(result.stream.messages.size() <= exchanged.size());
    for (std::size_t i = 0; i < result.stream.messages.size(); ++i) {
        CHECK(result.stream.messages[i].first == (exchanged[i].first == 1 ? message_type::text : message_type::binary));
        CHECK(result.stream.messages[i].second == exchanged[i].second);
    }
    return result;
}

// Fails the 1st, 2nd, … counted operation until a run needs fewer; returns a summary of the outcomes.
std::string fail_everywhere(const scenario& s, test::fault_counting counting, bool sticky, bool in_pieces) {
    std::map<std::string, int> outcomes;
    test::fault_plan settings;
    settings.counting = counting;
    settings.sticky = sticky;
    if (in_pieces) {
        settings.max_read_size = 700;
        settings.max_write_size = 1100;
    }
    std::size_t n = 1;
    for (; n <= 1000; ++n) {
        settings.fail_at = n;
        const auto r = run_once(s, settings);
        if (!r.injected) {
            INFO(s.name, ": the run without a failure (", r.operations, " operations)");
            s.check_clean_run(r.stream, r.peer);
            break;
        }
        const auto errc = static_cast<websocket_errc>(r.stream.error.value());
        const bool clean = !r.stream.error || s.expected_errors.contains(errc);
        CHECK_MESSAGE(clean, s.name, ": failing operation ", n, " ended with ", r.stream.error.message());
        ++outcomes[std::string(outcome_name(r.stream.error))];
    }
    REQUIRE_MESSAGE(n <= 1000, s.name, ": the scenario never ran out of operations to fail");
    std::ostringstream summary;
    summary << s.name << (in_pieces ? " in pieces" : "") << ", failing " << counting_name(counting)
            << (sticky ? " (sticky)" : " (once)") << ": " << n << " runs, the last without a failure;";
    for (const auto& [what, count] : outcomes) summary << " " << what << " ×" << count << ";";
    return summary.str();
}

void fail_everywhere(const scenario& s) {
    for (auto counting : {test::fault_counting::reads_and_writes, test::fault_counting::reads_only,
                          test::fault_counting::writes_only}) {
        for (bool sticky : {true, false}) {
            for (bool in_pieces : {false, true}) {
                const auto summary = fail_everywhere(s, counting, sticky, in_pieces);
                CHECK_MESSAGE(true, summary);
            }
        }
    }
}

}  // namespace

TEST_CASE("fault injection: the fault stream fails the chosen operation and counts completions") {
    asio::io_context io;
    test::local_socket a(io), b(io);
    asio::local::connect_pair(a, b);
    auto plan = std::make_shared<test::fault_plan>();
    plan->fail_at = 2;
    test::fault_stream stream(std::move(a), plan);
    std::vector<std::error_code> results;
    std::array<char, 4> data{'a', 'b', 'c', 'd'};
    for (int i = 0; i < 3; ++i)
        stream.async_write_some(asio::buffer(data), [&](std::error_code ec, std::size_t) { results.push_back(ec); });
    io.run_for(std::chrono::seconds(5));
    REQUIRE(results.size() == 3);
    CHECK_FALSE(results[0]);
    CHECK(results[1] == asio::error::connection_reset);
    CHECK(results[2] == asio::error::connection_reset);  // sticky: the connection stays broken
    CHECK(plan->injected);
    CHECK(plan->started == 3);
    CHECK(plan->completed == 3);
    std::array<char, 16> received{};
    std::error_code ec;
    CHECK(b.read_some(asio::buffer(received), ec) == 4);  // the first write went through
    b.read_some(asio::buffer(received), ec);
    CHECK(ec == asio::error::eof);                        // the failure ended the connection
}

TEST_CASE("fault injection: a server echoing messages, fragments and pings, then the peer's close") {
    scenario s{"server echo", role::server, echo_server, echo_client_peer, check_echo_server_clean_run,
               {websocket_errc::connection_closed_prematurely}};
    fail_everywhere(s);
}

TEST_CASE("fault injection: a client sending, receiving echoes and pings, then its own close") {
    scenario s{"client exchange", role::client, sending_client, echo_server_peer, check_sending_client_clean_run,
               {websocket_errc::connection_closed_prematurely, websocket_errc::handshake_failed}};
    fail_everywhere(s);
}

TEST_CASE("fault injection: our close is never answered (the close timeout)") {
    for (auto r : {role::server, role::client}) {
        scenario s{r == role::server ? "server close timeout" : "client close timeout", r,
                   [r](faulty_stream& stream, stream_log& log) { return unanswered_close(stream, log, r); },
                   [r](test::raw_peer& peer, peer_log& log) { return silent_peer(peer, log, r); },
                   check_unanswered_close_clean_run,
                   {websocket_errc::connection_closed_prematurely, websocket_errc::close_timeout,
                    websocket_errc::handshake_failed}};
        fail_everywhere(s);
    }
}

TEST_CASE("fault injection: failing the connection on invalid UTF-8") {
    for (auto r : {role::server, role::client}) {
        scenario s{r == role::server ? "server fails 1007" : "client fails 1007", r,
                   [r](faulty_stream& stream, stream_log& log) { return receiving_stream(stream, log, r); },
                   [r](test::raw_peer& peer, peer_log& log) { return invalid_utf8_peer(peer, log, r); },
                   check_invalid_utf8_clean_run,
                   {websocket_errc::connection_closed_prematurely, websocket_errc::invalid_payload_data,
                    websocket_errc::handshake_failed}};
        fail_everywhere(s);
    }
}
