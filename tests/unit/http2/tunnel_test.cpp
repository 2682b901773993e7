// http2::tunnel over a fake connection (tunnel_host): what reads take and give back to the window, how
// writes become DATA (and END_STREAM), and how the stream's end, a reset and close() reach the stream's
// operations. Completions are posted; the io_context runs them.
#include <duplex/http2/tunnel.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct fake_host final : duplex::http2::tunnel_host {
    std::size_t consumed = 0;
    int outputs = 0;
    std::vector<std::uint32_t> resets;
    void tunnel_consumed(std::int32_t, std::size_t n) override { consumed += n; }
    void tunnel_has_output(std::int32_t) override { ++outputs; }
    void tunnel_reset(std::int32_t, std::uint32_t code) override { resets.push_back(code); }
};

struct fixture {
    asio::io_context io;
    fake_host host;
    std::shared_ptr<duplex::http2::tunnel_state> state =
        std::make_shared<duplex::http2::tunnel_state>(1, host, io.get_executor());
    duplex::http2::tunnel tunnel{state, nullptr};

    void deliver(std::string_view text) { state->deliver(std::as_bytes(std::span(text.data(), text.size()))); }

    // One read into `size` bytes: (error, what it read).
    std::pair<std::error_code, std::string> read(std::size_t size) {
        std::string buffer(size, '\0');
        std::error_code result;
        std::size_t got = 0;
        bool done = false;
        tunnel.async_read_some(asio::buffer(buffer), [&](std::error_code ec, std::size_t n) {
            result = ec, got = n, done = true;
        });
        io.restart();
        io.poll();
        REQUIRE(done);
        buffer.resize(got);
        return {result, buffer};
    }

    // What nghttp2's data source gets: (return value, bytes, flags).
    std::tuple<ssize_t, std::string, std::uint32_t> produce(std::size_t length) {
        std::string frame(length, '\0');
        std::uint32_t flags = 0;
        const auto n = state->produce(reinterpret_cast<std::uint8_t*>(frame.data()), length, &flags);
        frame.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return {n, frame, flags};
    }
};

}  // namespace

TEST_CASE("http2 tunnel: reads take DATA as it came and give back only what they took") {
    fixture f;
    f.deliver("hello world");
    CHECK(f.host.consumed == 0);
    auto [ec, text] = f.read(5);
    CHECK(!ec);
    CHECK(text == "hello");
    CHECK(f.host.consumed == 5);
    std::tie(ec, text) = f.read(100);
    CHECK(text == " world");
    CHECK(f.host.consumed == 11);
}

TEST_CASE("http2 tunnel: DATA arriving for a pending read goes straight into it") {
    fixture f;
    std::array<char, 4> buffer{};
    std::size_t got = 0;
    f.tunnel.async_read_some(asio::buffer(buffer), [&](std::error_code, std::size_t n) { got = n; });
    f.io.poll();
    CHECK(got == 0);
    f.deliver("abcdef");
    f.io.restart();
    f.io.poll();
    CHECK(got == 4);
    CHECK(std::string_view(buffer.data(), 4) == "abcd");
    CHECK(f.host.consumed == 4);  // "ef" waits, its window still closed
    CHECK(f.read(10).second == "ef");
}

TEST_CASE("http2 tunnel: END_STREAM reads as eof after the data before it") {
    fixture f;
    f.deliver("last");
    f.state->end_of_input();
    CHECK(f.read(10).second == "last");
    CHECK(f.read(10).first == asio::error::eof);
}

TEST_CASE("http2 tunnel: a reset fails reads, after what came before it (a Close then RST_STREAM)") {
    fixture f;
    f.deliver("close frame");
    f.state->stream_closed(NGHTTP2_CANCEL);
    CHECK(f.read(100).second == "close frame");
    CHECK(f.host.consumed == 0);  // the stream is gone: nothing to give back to it
    CHECK(f.read(100).first == asio::error::connection_reset);
    CHECK_FALSE(f.tunnel.is_open());
}

TEST_CASE("http2 tunnel: writes become DATA; the write completes once all of it was taken") {
    fixture f;
    const std::string header = "HD", payload = "payload";
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(header), asio::buffer(payload)};
    std::size_t written = 0;
    bool done = false;
    f.tunnel.async_write_some(pieces, [&](std::error_code ec, std::size_t n) {
        CHECK(!ec);
        written = n, done = true;
    });
    CHECK(f.host.outputs == 1);
    auto [n, frame, flags] = f.produce(5);
    CHECK(frame == "HDpay");
    f.io.poll();
    CHECK_FALSE(done);
    std::tie(n, frame, flags) = f.produce(100);
    CHECK(frame == "load");
    CHECK(flags == 0);
    f.io.restart();
    f.io.poll();
    CHECK(done);
    CHECK(written == 9);
    std::tie(n, frame, flags) = f.produce(100);
    CHECK(n == NGHTTP2_ERR_DEFERRED);  // nothing to send: nghttp2 waits for tunnel_has_output
}

TEST_CASE("http2 tunnel: the half-close is END_STREAM after the data; writes after it fail") {
    fixture f;
    duplex::http2::tunnel_state& state = *f.state;
    state.shutdown_send();
    auto [n, frame, flags] = f.produce(100);
    CHECK(n == 0);
    CHECK((flags & NGHTTP2_DATA_FLAG_EOF) != 0);
    std::error_code result;
    f.tunnel.async_write_some(asio::buffer("x", 1), [&](std::error_code ec, std::size_t) { result = ec; });
    f.io.poll();
    CHECK(result == asio::error::broken_pipe);
}

TEST_CASE("http2 tunnel: close() resets an open stream with CANCEL and ends pending operations") {
    fixture f;
    std::error_code result;
    std::array<char, 8> buffer{};
    f.tunnel.async_read_some(asio::buffer(buffer), [&](std::error_code ec, std::size_t) { result = ec; });
    std::error_code ignored;
    f.tunnel.close(ignored);
    f.io.poll();
    CHECK(result == asio::error::operation_aborted);
    REQUIRE(f.host.resets.size() == 1);
    CHECK(f.host.resets[0] == NGHTTP2_CANCEL);
}

TEST_CASE("http2 tunnel: close() after our END_STREAM went resets with NO_ERROR") {
    fixture f;
    f.state->shutdown_send();
    f.produce(100);
    std::error_code ignored;
    f.tunnel.close(ignored);
    REQUIRE(f.host.resets.size() == 1);
    CHECK(f.host.resets[0] == NGHTTP2_NO_ERROR);
}

TEST_CASE("http2 tunnel: close() before the asked END_STREAM went keeps it, and resets only a peer still open") {
    SUBCASE("the peer ended first (the clean close): END_STREAM goes, no reset") {
        fixture f;
        f.state->end_of_input();
        f.state->shutdown_send();
        std::error_code ignored;
        f.tunnel.close(ignored);
        CHECK(f.host.resets.empty());
        auto [n, frame, flags] = f.produce(100);
        CHECK((flags & NGHTTP2_DATA_FLAG_EOF) != 0);
        CHECK_FALSE(f.state->reset_after_end());
    }
    SUBCASE("the peer has not ended: END_STREAM goes, then the connection resets with NO_ERROR") {
        fixture f;
        f.state->shutdown_send();
        std::error_code ignored;
        f.tunnel.close(ignored);
        CHECK(f.host.resets.empty());
        auto [n, frame, flags] = f.produce(100);
        CHECK((flags & NGHTTP2_DATA_FLAG_EOF) != 0);
        CHECK(f.state->reset_after_end());
    }
}
