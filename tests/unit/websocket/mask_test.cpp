#include <duplex/websocket/mask.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

using duplex::ws::apply_mask;
using duplex::ws::copy_masked;
using duplex::ws::mask_key;

namespace {

std::vector<std::byte> random_bytes(std::size_t size, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> bytes(size);
    for (auto& b : bytes) b = static_cast<std::byte>(rng());
    return bytes;
}

std::vector<std::byte> reference_mask(std::vector<std::byte> data, mask_key key, std::size_t offset) {
    for (std::size_t i = 0; i < data.size(); ++i) data[i] ^= std::byte{key[(offset + i) % 4]};
    return data;
}

constexpr mask_key test_key{0x37, 0xfa, 0x21, 0x3d};

// Lengths around every vector width and unrolled block (8, 16, 32, 64, 128, 256 bytes) and the size above
// which the destination is aligned first.
constexpr std::size_t max_length = 300;

}  // namespace

TEST_CASE("apply_mask reproduces the RFC 6455 §5.7 example") {
    const std::vector<std::byte> hello{std::byte{'H'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'}, std::byte{'o'}};
    const std::vector<std::byte> masked{std::byte{0x7f}, std::byte{0x9f}, std::byte{0x4d}, std::byte{0x51}, std::byte{0x58}};

    auto data = hello;
    apply_mask(data.data(), data.size(), test_key);
    CHECK(data == masked);

    apply_mask(data.data(), data.size(), test_key);
    CHECK(data == hello);
}

TEST_CASE("copy_masked reproduces the RFC 6455 §5.7 example and leaves the source alone") {
    const std::vector<std::byte> hello{std::byte{'H'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'}, std::byte{'o'}};
    const std::vector<std::byte> masked{std::byte{0x7f}, std::byte{0x9f}, std::byte{0x4d}, std::byte{0x51}, std::byte{0x58}};
    const auto source = hello;
    std::vector<std::byte> out(source.size());

    copy_masked(out.data(), source.data(), source.size(), test_key);

    CHECK(out == masked);
    CHECK(source == hello);
}

TEST_CASE("an empty payload is left alone, even with a null pointer") {
    apply_mask(nullptr, 0, test_key);
    copy_masked(nullptr, nullptr, 0, test_key, 3);
    std::byte untouched{0x5a};
    apply_mask(&untouched, 0, test_key, 1);
    CHECK(untouched == std::byte{0x5a});
}

TEST_CASE("masking twice with the same key and offset restores the payload") {
    const auto original = random_bytes(100'003, 1);
    for (std::size_t offset : {0u, 1u, 2u, 3u, 4u, 7u, 1'000'001u}) {
        CAPTURE(offset);
        auto data = original;
        apply_mask(data.data(), data.size(), test_key, offset);
        CHECK(data != original);
        apply_mask(data.data(), data.size(), test_key, offset);
        CHECK(data == original);
    }
}

TEST_CASE("apply_mask matches a byte loop for every offset, length and alignment") {
    const auto source = random_bytes(max_length + 64, 2);
    const mask_key key{0x01, 0x80, 0xfe, 0x7f};
    // The payload is placed at every misalignment within a 64-byte block of an over-sized buffer, so both
    // the unaligned vector loads and the alignment prologue see every starting position.
    std::vector<std::byte> buffer(max_length + 64 + 64);
    const auto block_start = (64 - reinterpret_cast<std::uintptr_t>(buffer.data()) % 64) % 64;
    int mismatches = 0;
    for (std::size_t misalignment = 0; misalignment < 64; ++misalignment) {
        std::byte* const data = buffer.data() + block_start + misalignment;
        for (std::size_t offset = 0; offset < 8; ++offset) {
            for (std::size_t length = 0; length <= max_length; ++length) {
                const std::vector<std::byte> payload(source.begin(), source.begin() + static_cast<std::ptrdiff_t>(length));
                std::copy(payload.begin(), payload.end(), data);
                apply_mask(data, length, key, offset);
                const auto expected = reference_mask(payload, key, offset);
                if (!std::equal(expected.begin(), expected.end(), data)) {
                    ++mismatches;
                    INFO("misalignment " << misalignment << ", offset " << offset << ", length " << length);
                    CHECK(std::equal(expected.begin(), expected.end(), data));
                }
            }
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("apply_mask leaves the bytes around the payload alone") {
    std::vector<std::byte> buffer(max_length + 64, std::byte{0xaa});
    for (std::size_t start = 0; start < 32; ++start) {
        for (std::size_t length : {1u, 7u, 31u, 33u, 129u, 257u}) {
            std::fill(buffer.begin(), buffer.end(), std::byte{0xaa});
            apply_mask(buffer.data() + start, length, test_key, start);
            CHECK(std::all_of(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(start),
                              [](std::byte b) { return b == std::byte{0xaa}; }));
            CHECK(std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(start + length), buffer.end(),
                              [](std::byte b) { return b == std::byte{0xaa}; }));
        }
    }
}

TEST_CASE("copy_masked equals apply_mask for every offset, length and alignment of source and destination") {
    const auto source_bytes = random_bytes(max_length + 64, 3);
    std::vector<std::byte> out(max_length + 64);
    int mismatches = 0;
    for (std::size_t src_shift : {0u, 1u, 3u, 8u, 13u}) {
        for (std::size_t dst_shift : {0u, 1u, 2u, 5u, 16u, 31u}) {
            for (std::size_t offset = 0; offset < 8; ++offset) {
                for (std::size_t length = 0; length <= max_length; ++length) {
                    const std::byte* const src = source_bytes.data() + src_shift;
                    std::byte* const dst = out.data() + dst_shift;
                    copy_masked(dst, src, length, test_key, offset);
                    std::vector<std::byte> in_place(src, src + length);
                    apply_mask(in_place.data(), length, test_key, offset);
                    if (!std::equal(in_place.begin(), in_place.end(), dst)) {
                        ++mismatches;
                        INFO("src_shift " << src_shift << ", dst_shift " << dst_shift << ", offset " << offset
                                          << ", length " << length);
                        CHECK(std::equal(in_place.begin(), in_place.end(), dst));
                    }
                }
            }
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("a payload masked in pieces equals the payload masked at once") {
    const auto original = random_bytes(5'000, 4);
    const auto whole = reference_mask(original, test_key, 0);
    std::mt19937 rng(5);
    for (int trial = 0; trial < 200; ++trial) {
        auto data = original;
        std::size_t position = 0;
        while (position < data.size()) {
            const std::size_t piece = std::min<std::size_t>(rng() % 700, data.size() - position);
            apply_mask(data.data() + position, piece, test_key, position);
            position += piece;
        }
        REQUIRE(data == whole);
    }
}

TEST_CASE("a large unaligned payload matches the byte loop") {
    const auto original = random_bytes((1u << 20) + 13, 6);
    for (std::size_t shift : {0u, 1u, 6u, 10u}) {
        CAPTURE(shift);
        std::vector<std::byte> data(original.begin() + static_cast<std::ptrdiff_t>(shift), original.end());
        const auto expected = reference_mask(data, test_key, 2);
        apply_mask(data.data(), data.size(), test_key, 2);
        CHECK(data == expected);

        std::vector<std::byte> copied(original.size() - shift);
        copy_masked(copied.data(), original.data() + shift, copied.size(), test_key, 2);
        CHECK(copied == expected);
    }
}
