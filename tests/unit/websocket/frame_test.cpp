#include <duplex/websocket/frame.hpp>

#include <doctest/doctest.h>

#include <vector>

using namespace duplex::ws;

namespace {
std::vector<std::byte> encoded(const frame_header& h) {
    std::vector<std::byte> out(max_header_size);
    out.resize(encode_header(h, out.data()));
    return out;
}
}  // namespace

TEST_CASE("each length form is chosen by size and decodes back") {
    const std::pair<std::uint64_t, std::size_t> cases[] = {
        {0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}, {(1ull << 32) + 5, 10}, {(1ull << 63) - 1, 10}};
    for (auto [length, size] : cases) {
        for (bool masked : {false, true}) {
            frame_header h;
            h.fin = length % 2 == 0;
            h.op = opcode::binary;
            h.masked = masked;
            h.key = {1, 2, 3, 4};
            h.payload_length = length;
            const auto bytes = encoded(h);
            CHECK(bytes.size() == size + (masked ? 4 : 0));
            frame_header back;
            const auto r = decode_header(bytes.data(), bytes.size(), back);
            REQUIRE(r.status == decode_status::ok);
            CHECK(r.header_size == bytes.size());
            CHECK(back.payload_length == length);
            CHECK(back.fin == h.fin);
            CHECK(back.op == opcode::binary);
            CHECK(back.masked == masked);
            if (masked) CHECK(back.key == h.key);
        }
    }
}

TEST_CASE("a header split anywhere asks for more bytes") {
    frame_header h;
    h.masked = true;
    h.payload_length = 70000;
    const auto bytes = encoded(h);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
        frame_header out;
        CHECK(decode_header(bytes.data(), cut, out).status == decode_status::need_more);
    }
}

TEST_CASE("the RFC 6455 §5.7 examples decode") {
    // A single-frame unmasked text message "Hello".
    const std::byte unmasked[] = {std::byte(0x81), std::byte(0x05)};
    frame_header h;
    auto r = decode_header(unmasked, sizeof unmasked, h);
    CHECK(r.status == decode_status::ok);
    CHECK(h.fin);
    CHECK(h.op == opcode::text);
    CHECK_FALSE(h.masked);
    CHECK(h.payload_length == 5);
    // A masked one, key 37 fa 21 3d.
    const std::byte masked[] = {std::byte(0x81), std::byte(0x85), std::byte(0x37), std::byte(0xfa), std::byte(0x21), std::byte(0x3d)};
    r = decode_header(masked, sizeof masked, h);
    CHECK(r.header_size == 6);
    CHECK(h.key == mask_key{0x37, 0xfa, 0x21, 0x3d});
    // 256 bytes binary in one unmasked frame: 0x82 0x7E 0x0100.
    const std::byte medium[] = {std::byte(0x82), std::byte(0x7E), std::byte(0x01), std::byte(0x00)};
    r = decode_header(medium, sizeof medium, h);
    CHECK(h.payload_length == 256);
    CHECK(h.op == opcode::binary);
}

TEST_CASE("a 64-bit length with its most significant bit set is refused") {
    std::byte bytes[10] = {std::byte(0x82), std::byte(0x7F), std::byte(0x80)};
    frame_header h;
    CHECK(decode_header(bytes, sizeof bytes, h).status == decode_status::length_too_large);
}

TEST_CASE("reserved bits and opcodes are reported as they are, for the stream to judge") {
    const std::byte bytes[] = {std::byte(0x7B), std::byte(0x00)};
    frame_header h;
    REQUIRE(decode_header(bytes, sizeof bytes, h).status == decode_status::ok);
    CHECK_FALSE(h.fin);
    CHECK(h.rsv1);
    CHECK(h.rsv2);
    CHECK(h.rsv3);
    CHECK(static_cast<int>(h.op) == 0xB);
    CHECK_FALSE(is_known(h.op));
    CHECK(is_control(h.op));
    CHECK(is_known(opcode::pong));
    CHECK_FALSE(is_control(opcode::binary));
}
