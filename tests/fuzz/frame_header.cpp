// decode_header on arbitrary bytes: what it decodes re-encodes to the same header, no prefix of a
// header decodes, and the payload after it masks exactly as a byte-by-byte XOR would.
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/mask.hpp>

#include "fuzz_support.hpp"

#include <array>
#include <cstring>
#include <vector>

using namespace duplex::ws;

namespace {

bool same(const frame_header& a, const frame_header& b) {
    return a.fin == b.fin && a.rsv1 == b.rsv1 && a.rsv2 == b.rsv2 && a.rsv3 == b.rsv3 && a.op == b.op &&
           a.masked == b.masked && (!a.masked || a.key == b.key) && a.payload_length == b.payload_length;
}

// The size the header's own bytes announce (RFC 6455 §5.2).
std::size_t announced_size(const std::uint8_t* data) {
    const auto length7 = data[1] & 0x7F;
    return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((data[1] & 0x80) ? 4 : 0);
}

void check_masking(const std::uint8_t* payload, std::size_t size, mask_key key, std::size_t offset) {
    std::vector<std::byte> expected(size), in_place(size), copied(size);
    for (std::size_t i = 0; i < size; ++i) expected[i] = std::byte(payload[i] ^ key[(offset + i) % 4]);
    if (size) std::memcpy(in_place.data(), payload, size);
    apply_mask(in_place.data(), size, key, offset);
    copy_masked(copied.data(), fuzz::as_bytes(payload), size, key, offset);
    FUZZ_CHECK(in_place == expected);
    FUZZ_CHECK(copied == expected);
    // Unmasking in two pieces split anywhere gives the same bytes.
    const std::size_t split = size ? payload[0] % (size + 1) : 0;
    apply_mask(in_place.data(), split, key, offset);
    apply_mask(in_place.data() + split, size - split, key, offset + split);
    FUZZ_CHECK(size == 0 || std::memcmp(in_place.data(), payload, size) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    frame_header header;
    const auto result = decode_header(fuzz::as_bytes(data), size, header);
    if (size < 2 || size < announced_size(data)) {
        FUZZ_CHECK(result.status == decode_status::need_more);
        return 0;
    }
    const auto length7 = data[1] & 0x7F;
    if (result.status == decode_status::length_too_large) {
        FUZZ_CHECK(length7 == 127 && (data[2] & 0x80) != 0);
        return 0;
    }
    FUZZ_CHECK(result.status == decode_status::ok);
    FUZZ_CHECK(result.header_size == announced_size(data));
    FUZZ_CHECK(result.header_size <= max_header_size);
    FUZZ_CHECK(header.payload_length >> 63 == 0);
    FUZZ_CHECK(static_cast<unsigned>(header.op) == (data[0] & 0x0F));
    FUZZ_CHECK(header.fin == ((data[0] & 0x80) != 0));
    FUZZ_CHECK(header.masked == ((data[1] & 0x80) != 0));
    if (length7 < 126) FUZZ_CHECK(header.payload_length == static_cast<std::uint64_t>(length7));

    // No prefix of a complete header decodes.
    for (std::size_t prefix = 0; prefix < result.header_size; ++prefix) {
        frame_header ignored;
        FUZZ_CHECK(decode_header(fuzz::as_bytes(data), prefix, ignored).status == decode_status::need_more);
    }

    // Re-encoding uses the shortest length form and decodes to the same header.
    std::array<std::byte, max_header_size> encoded;
    const auto encoded_size = encode_header(header, encoded.data());
    FUZZ_CHECK(encoded_size <= result.header_size);
    frame_header again;
    const auto reread = decode_header(encoded.data(), encoded_size, again);
    FUZZ_CHECK(reread.status == decode_status::ok && reread.header_size == encoded_size);
    FUZZ_CHECK(same(header, again));
    const bool minimal = length7 < 126 || (length7 == 126 && header.payload_length >= 126) ||
                         (length7 == 127 && header.payload_length > 0xFFFF);
    if (minimal) {
        FUZZ_CHECK(encoded_size == result.header_size);
        FUZZ_CHECK(std::memcmp(encoded.data(), data, encoded_size) == 0);
    }

    // What follows the header is a payload: masking it matches the XOR definition at any offset.
    const auto* payload = data + result.header_size;
    const auto payload_size = size - result.header_size;
    const std::size_t offset = header.payload_length % 8;
    check_masking(payload, payload_size, header.masked ? header.key : mask_key{data[0], data[1], 0x5A, 0xA5}, offset);
    return 0;
}
