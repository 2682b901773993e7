// duplex::deflate::permessage, both halves of the codec.
// - Decompression of arbitrary bytes, cut into messages and fed in chunks into small output buffers under
//   a size limit: nothing throws but std::bad_alloc; no call takes more input or writes more output than
//   it was given; a call that returns `more` made progress; no message produces more than the limit, and
//   one that reaches past it ends with too_big exactly at it; after corrupt or too_big the codec is left.
// - Round trip: messages of the input's bytes, compressed by a sender (window 8-15, context takeover or
//   not, compression and memory level, one or two pieces per message, small output buffers) and then
//   decompressed by a receiver with the same agreement and a limit of exactly the message's size, come
//   back whole, with end_of_message and never too_big; with one byte less of limit the last message
//   (without context takeover) ends too_big. Without context takeover an idle codec holds no zlib memory.
//
// Input: four configuration bytes (two for each half), a 16-bit length, that many bytes to decompress, then the bytes for
// the round trip.
#include <duplex/deflate/permessage.hpp>

#include "fuzz_support.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <span>
#include <vector>

using namespace duplex;
using namespace duplex::deflate;

namespace {

constexpr std::size_t chunk_sizes[] = {SIZE_MAX, 1, 7, 64};
constexpr std::size_t limits[] = {1 << 20, 0, 5, 300};
constexpr std::size_t arbitrary_message_sizes[] = {SIZE_MAX, 4, 32, 512};
constexpr std::size_t message_sizes[] = {SIZE_MAX, 7, 100, 2000};
constexpr std::size_t compress_outputs[] = {permessage::min_output_size, 17, 100, 1 << 16};
constexpr std::size_t decompress_outputs[] = {1 << 16, 1, 3, 256};
constexpr int levels[] = {-1, 0, 1, 9};
constexpr int memory_levels[] = {5, 1, 8, 9};

// Both directions agree on `bits` and `no_takeover`, so either role's codec reads what the other sends.
negotiated agreement(int bits, bool no_takeover) {
    negotiated n;
    n.server_max_window_bits = n.client_max_window_bits = bits;
    n.server_no_context_takeover = n.client_no_context_takeover = no_takeover;
    return n;
}

struct inflated {
    decompress_status status = decompress_status::more;
    std::vector<std::byte> data;
};

// Feeds one message's payload in chunks; returns how it ended and what it produced.
inflated inflate_message(permessage& codec, std::span<const std::byte> payload, std::size_t chunk_size,
                         std::size_t output_size, std::size_t limit) {
    inflated result;
    std::vector<std::byte> output(output_size);
    std::size_t fed = 0;
    int stalls = 0;
    for (;;) {
        const auto chunk = payload.subspan(fed, std::min(chunk_size, payload.size() - fed));
        const bool end_of_message = fed + chunk.size() == payload.size();
        const auto r = codec.decompress_some(chunk, end_of_message, output, limit);
        FUZZ_CHECK(r.consumed <= chunk.size());
        FUZZ_CHECK(r.produced <= output.size());
        result.data.insert(result.data.end(), output.begin(), output.begin() + static_cast<std::ptrdiff_t>(r.produced));
        FUZZ_CHECK(result.data.size() <= limit);
        fed += r.consumed;
        if (r.status != decompress_status::more) {
            result.status = r.status;
            if (r.status == decompress_status::end_of_message) FUZZ_CHECK(fed == payload.size());
            if (r.status == decompress_status::too_big) FUZZ_CHECK(result.data.size() == limit);
            return result;
        }
        // `more` means: call again. Calls that move nothing, again and again, would never end.
        stalls = r.consumed > 0 || r.produced > 0 ? 0 : stalls + 1;
        FUZZ_CHECK(stalls < 3);
    }
}

void decompress_arbitrary(std::uint8_t config, std::uint8_t sizes, std::span<const std::uint8_t> bytes) {
    const int bits = 8 + (config & 7);
    const bool no_takeover = (config & 8) != 0;
    const auto chunk_size = chunk_sizes[(config >> 4) & 3];
    const auto limit = limits[(config >> 6) & 3];
    const auto message_size = arbitrary_message_sizes[sizes & 3];
    const auto output_size = decompress_outputs[(sizes >> 2) & 3];
    permessage codec(ws::role::server, agreement(bits, no_takeover));
    const std::span<const std::byte> input(fuzz::as_bytes(bytes.data()), bytes.size());
    std::size_t at = 0;
    do {
        const auto payload = input.subspan(at, std::min(message_size, input.size() - at));
        at += payload.size();
        const auto r = inflate_message(codec, payload, chunk_size, output_size, limit);
        if (r.status != decompress_status::end_of_message) return;  // corrupt or too_big: the connection fails
    } while (at < input.size());
}

// Compresses one message as one or two pieces, each piece to completion, into small output buffers.
std::vector<std::byte> deflate_message(permessage& codec, std::span<const std::byte> message, bool two_pieces,
                                       std::size_t output_size) {
    std::vector<std::span<const std::byte>> pieces{message};
    if (two_pieces) pieces = {message.first(message.size() / 2), message.subspan(message.size() / 2)};
    std::vector<std::byte> out;
    std::vector<std::byte> output(output_size);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        auto input = pieces[i];
        for (;;) {
            const auto r = codec.compress_some(input, i + 1 == pieces.size(), output);
            FUZZ_CHECK(r.consumed <= input.size());
            FUZZ_CHECK(r.produced <= output.size());
            out.insert(out.end(), output.begin(), output.begin() + static_cast<std::ptrdiff_t>(r.produced));
            input = input.subspan(r.consumed);
            if (r.done) break;
        }
        FUZZ_CHECK(input.empty());
    }
    return out;
}

void round_trip(std::uint8_t config, std::uint8_t sizes, std::span<const std::uint8_t> bytes) {
    const int bits = 8 + (config & 7);
    const bool no_takeover = (config & 8) != 0;
    codec_options options;
    options.compression_level = levels[(config >> 4) & 3];
    options.memory_level = memory_levels[(config >> 6) & 3];
    options.release_between_messages = (sizes & 0x40) == 0;
    const bool two_pieces = (sizes & 0x80) != 0;
    const auto n = agreement(bits, no_takeover);
    permessage sender(ws::role::client, n, options);
    permessage receiver(ws::role::server, n, options);
    const bool idle_is_empty = no_takeover && options.release_between_messages;

    const std::span<const std::byte> input(fuzz::as_bytes(bytes.data()), bytes.size());
    const auto message_size = message_sizes[sizes & 3];
    std::size_t at = 0;
    do {
        const auto message = input.subspan(at, std::min(message_size, input.size() - at));
        at += message.size();
        const auto payload = deflate_message(sender, message, two_pieces, compress_outputs[(sizes >> 2) & 3]);
        FUZZ_CHECK(!payload.empty());
        if (idle_is_empty) FUZZ_CHECK(sender.memory_in_use() == 0);

        const auto output_size = decompress_outputs[(sizes >> 4) & 3];
        const auto r = inflate_message(receiver, payload, chunk_sizes[(config >> 4) & 3], output_size, message.size());
        FUZZ_CHECK(r.status == decompress_status::end_of_message);
        FUZZ_CHECK(r.data.size() == message.size());
        FUZZ_CHECK(std::equal(r.data.begin(), r.data.end(), message.begin()));
        if (idle_is_empty) FUZZ_CHECK(receiver.memory_in_use() == 0);

        // Without context takeover the message stands alone: one byte less of limit and it is too big
        // (checked on the last message only: a codec per message would make the target slow).
        if (no_takeover && !message.empty() && at == input.size()) {
            permessage fresh(ws::role::server, n, options);
            const auto cut = inflate_message(fresh, payload, SIZE_MAX, output_size, message.size() - 1);
            FUZZ_CHECK(cut.status == decompress_status::too_big);
            FUZZ_CHECK(std::equal(cut.data.begin(), cut.data.end(), message.begin()));
        }
    } while (at < input.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto arbitrary_config = in.byte();
    const auto arbitrary_sizes = in.byte();
    const auto round_trip_config = in.byte();
    const auto round_trip_sizes = in.byte();
    const auto arbitrary = in.bytes(in.u16());
    try {
        decompress_arbitrary(arbitrary_config, arbitrary_sizes, arbitrary);
        round_trip(round_trip_config, round_trip_sizes, in.rest());
    } catch (const std::bad_alloc&) {
    }
    return 0;
}
