// Differential: utf8_validator fed the input in pieces (split where the input says) against the
// reference checker in fuzz_support.hpp. The verdict after every piece and the fail-fast position
// must agree, and so must is_valid_utf8.
#include <duplex/websocket/utf8.hpp>

#include "fuzz_support.hpp"

using duplex::ws::utf8_validator;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    fuzz::input_reader in(data, size);
    const auto split_seed = in.u16();
    const auto text = in.rest();
    const auto reference = fuzz::reference_utf8(text);
    const auto* bytes = fuzz::as_bytes(text.data());
    const auto n = text.size();

    FUZZ_CHECK(duplex::ws::is_valid_utf8(bytes, n) == reference.complete);

    // Two pieces: valid so far exactly when the reference has not failed inside the piece.
    const std::size_t split = n ? split_seed % (n + 1) : 0;
    utf8_validator two;
    const bool first = two.feed(bytes, split);
    FUZZ_CHECK(first == !(reference.failure && *reference.failure < split));
    const bool second = two.feed(bytes + split, n - split);
    FUZZ_CHECK(second == !reference.failure);
    FUZZ_CHECK(two.failed() == reference.failure.has_value());
    FUZZ_CHECK(two.complete() == reference.complete);

    // Three pieces, the middle one long enough to reach the vector and chunked paths.
    const std::size_t a = n ? (split_seed >> 8) % (n + 1) : 0;
    const std::size_t b = a + (n - a) / 2;
    utf8_validator three;
    three.feed(bytes, a);
    three.feed(bytes + a, b - a);
    three.feed(bytes + b, n - b);
    FUZZ_CHECK(three.complete() == reference.complete);
    FUZZ_CHECK(three.failed() == reference.failure.has_value());

    // Byte by byte: the first false is exactly at the reference's fail-fast position.
    utf8_validator single;
    std::optional<std::size_t> failed_at;
    for (std::size_t i = 0; i < n && !failed_at; ++i)
        if (!single.feed(bytes + i, 1)) failed_at = i;
    FUZZ_CHECK(failed_at == reference.failure);
    if (!failed_at) FUZZ_CHECK(single.complete() == reference.complete);

    // Once failed it stays failed; reset() starts over.
    if (reference.failure) {
        FUZZ_CHECK(!two.feed(bytes, 0));
        FUZZ_CHECK(!two.feed(reinterpret_cast<const std::byte*>("a"), 1));
    }
    two.reset();
    FUZZ_CHECK(two.complete() && !two.failed());
    return 0;
}
