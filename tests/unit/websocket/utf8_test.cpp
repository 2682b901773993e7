#include <duplex/websocket/utf8.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using duplex::ws::is_valid_utf8;
using duplex::ws::utf8_validator;

namespace {

using bytes = std::vector<unsigned char>;

bool feed(utf8_validator& validator, const unsigned char* data, std::size_t size) {
    return validator.feed(reinterpret_cast<const std::byte*>(data), size);
}

std::string hex(const bytes& input) {
    std::ostringstream out;
    out << std::hex;
    for (const unsigned b : input) out << (b < 0x10 ? "0" : "") << b << ' ';
    return out.str();
}

bytes encode(std::uint32_t code_point) {
    if (code_point < 0x80) return {static_cast<unsigned char>(code_point)};
    if (code_point < 0x800) {
        return {static_cast<unsigned char>(0xC0 | code_point >> 6), static_cast<unsigned char>(0x80 | (code_point & 0x3F))};
    }
    if (code_point < 0x10000) {
        return {static_cast<unsigned char>(0xE0 | code_point >> 12), static_cast<unsigned char>(0x80 | (code_point >> 6 & 0x3F)),
                static_cast<unsigned char>(0x80 | (code_point & 0x3F))};
    }
    return {static_cast<unsigned char>(0xF0 | code_point >> 18), static_cast<unsigned char>(0x80 | (code_point >> 12 & 0x3F)),
            static_cast<unsigned char>(0x80 | (code_point >> 6 & 0x3F)), static_cast<unsigned char>(0x80 | (code_point & 0x3F))};
}

// The reference decodes code point by code point and, after every byte, asks whether the range of code
// points the sequence could still become contains a Unicode scalar value of the sequence's length — a
// different formulation from the validator's DFA, which lists the allowed second bytes instead.
struct reference_verdict {
    std::optional<std::size_t> first_error; // the byte after which no continuation can be valid
    bool complete = false;

    bool operator==(const reference_verdict&) const = default;
};

bool holds_scalar_value(std::uint32_t lowest, std::uint32_t highest, int length) {
    constexpr std::uint32_t shortest[] = {0, 0x80, 0x800, 0x10000}; // anything below is overlong
    constexpr std::uint32_t longest[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    lowest = std::max(lowest, shortest[length - 1]);
    highest = std::min(highest, longest[length - 1]);
    if (lowest > highest) return false;
    const bool only_surrogates = lowest >= 0xD800 && highest <= 0xDFFF;
    return !only_surrogates;
}

reference_verdict reference_validate(const bytes& input) {
    std::size_t i = 0;
    while (i < input.size()) {
        const unsigned lead = input[i];
        const int length = lead < 0x80 ? 1 : lead < 0xC0 ? 0 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 0;
        if (length == 0) return {i, false};
        std::uint32_t prefix = length == 1 ? lead : lead & (0x7Fu >> length);
        for (int seen = 1; seen <= length; ++seen) {
            const std::size_t at = i + static_cast<std::size_t>(seen) - 1;
            if (at == input.size()) return {std::nullopt, false};
            if (seen > 1) {
                if ((input[at] & 0xC0) != 0x80) return {at, false};
                prefix = prefix << 6 | (input[at] & 0x3Fu);
            }
            const int missing_bits = 6 * (length - seen);
            const std::uint32_t lowest = prefix << missing_bits;
            const std::uint32_t highest = lowest | ((1u << missing_bits) - 1);
            if (!holds_scalar_value(lowest, highest, length)) return {at, false};
        }
        i += static_cast<std::size_t>(length);
    }
    return {std::nullopt, true};
}

// What the validator says about an input, fed in one go.
reference_verdict validate_whole(const bytes& input) {
    utf8_validator validator;
    const bool ok = feed(validator, input.data(), input.size());
    // The whole-buffer call reports only whether an error occurred; where it occurred is the job of the
    // byte-at-a-time feed below.
    return {ok ? std::nullopt : std::optional<std::size_t>{0}, validator.complete()};
}

// Fed one byte at a time: the index of the first byte for which feed returns false.
reference_verdict validate_byte_by_byte(const bytes& input) {
    utf8_validator validator;
    std::optional<std::size_t> first_error;
    for (std::size_t i = 0; i < input.size(); ++i) {
        const bool ok = feed(validator, &input[i], 1);
        if (ok && first_error) FAIL_CHECK("feed succeeded again after failing, at byte " << i << " of " << hex(input));
        if (!ok && !first_error) first_error = i;
    }
    return {first_error, validator.complete()};
}

reference_verdict validate_in_pieces(const bytes& input, const std::vector<std::size_t>& cuts) {
    utf8_validator validator;
    std::size_t start = 0;
    bool ok = true;
    for (const std::size_t cut : cuts) {
        ok = feed(validator, input.data() + start, cut - start) && ok;
        start = cut;
    }
    ok = feed(validator, input.data() + start, input.size() - start) && ok;
    return {ok ? std::nullopt : std::optional<std::size_t>{0}, validator.complete()};
}

// The shape validate_whole and validate_in_pieces can be compared with: whether, not where.
reference_verdict without_position(reference_verdict verdict) {
    if (verdict.first_error) verdict.first_error = 0;
    return verdict;
}

// Checks every way the validator can see the input against the reference, and against each other.
void check_against_reference(const bytes& input) {
    const auto expected = reference_validate(input);
    const auto whole = validate_whole(input);
    const auto byte_by_byte = validate_byte_by_byte(input);
    if (whole != without_position(expected) || byte_by_byte != expected) {
        INFO("input " << hex(input));
        INFO("reference: error at " << (expected.first_error ? std::to_string(*expected.first_error) : "none")
                                    << ", complete " << expected.complete);
        INFO("byte by byte: error at " << (byte_by_byte.first_error ? std::to_string(*byte_by_byte.first_error) : "none")
                                       << ", complete " << byte_by_byte.complete);
        CHECK(whole == without_position(expected));
        CHECK(byte_by_byte == expected);
    }
}

struct sample {
    const char* name;
    bytes input;
};

const std::vector<sample>& valid_samples() {
    static const std::vector<sample> samples{
        {"empty", {}},
        {"U+0000", {0x00}},
        {"U+007F", {0x7F}},
        {"U+0080", {0xC2, 0x80}},
        {"U+07FF", {0xDF, 0xBF}},
        {"U+0800", {0xE0, 0xA0, 0x80}},
        {"U+D7FF, last before the surrogates", {0xED, 0x9F, 0xBF}},
        {"U+E000, first after the surrogates", {0xEE, 0x80, 0x80}},
        {"U+FFFF", {0xEF, 0xBF, 0xBF}},
        {"U+10000", {0xF0, 0x90, 0x80, 0x80}},
        {"U+10FFFF", {0xF4, 0x8F, 0xBF, 0xBF}},
        {"U+FEFF byte order mark", {0xEF, 0xBB, 0xBF}},
        {"kosme (Autobahn 6.2)", {0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5}},
        {"every length in a row", {0x41, 0xC2, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0x41}},
    };
    return samples;
}

// Each with the index of the first byte after which the input can no longer become valid UTF-8.
struct invalid_sample {
    const char* name;
    bytes input;
    std::size_t first_error;
};

const std::vector<invalid_sample>& invalid_samples() {
    static const std::vector<invalid_sample> samples{
        {"overlong C0 80", {0xC0, 0x80}, 0},
        {"overlong C1 BF", {0xC1, 0xBF}, 0},
        {"overlong E0 80 80", {0xE0, 0x80, 0x80}, 1},
        {"overlong E0 9F BF", {0xE0, 0x9F, 0xBF}, 1},
        {"overlong F0 80 80 80", {0xF0, 0x80, 0x80, 0x80}, 1},
        {"overlong F0 8F BF BF", {0xF0, 0x8F, 0xBF, 0xBF}, 1},
        {"surrogate ED A0 80 (U+D800)", {0xED, 0xA0, 0x80}, 1},
        {"surrogate ED AD BF (U+DB7F)", {0xED, 0xAD, 0xBF}, 1},
        {"surrogate ED AE 80 (U+DB80)", {0xED, 0xAE, 0x80}, 1},
        {"surrogate ED AF BF (U+DBFF)", {0xED, 0xAF, 0xBF}, 1},
        {"surrogate ED B0 80 (U+DC00)", {0xED, 0xB0, 0x80}, 1},
        {"surrogate ED BF BF (U+DFFF)", {0xED, 0xBF, 0xBF}, 1},
        {"surrogate pair", {0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}, 1},
        {"above U+10FFFF: F4 90 80 80", {0xF4, 0x90, 0x80, 0x80}, 1},
        {"above U+10FFFF: F4 BF BF BF", {0xF4, 0xBF, 0xBF, 0xBF}, 1},
        {"above U+10FFFF: F5 80 80 80", {0xF5, 0x80, 0x80, 0x80}, 0},
        {"five-byte form F8 88 80 80 80", {0xF8, 0x88, 0x80, 0x80, 0x80}, 0},
        {"FE", {0xFE}, 0},
        {"FF", {0xFF}, 0},
        {"lone continuation 80", {0x80}, 0},
        {"lone continuation BF", {0xBF}, 0},
        {"continuation after ASCII", {0x61, 0x80, 0x62}, 1},
        {"one continuation too many", {0xC2, 0x80, 0x80}, 2},
        {"two-byte lead then ASCII", {0xC2, 0x41}, 1},
        {"three-byte lead then ASCII", {0xE1, 0x80, 0x41}, 2},
        {"four-byte lead then ASCII", {0xF1, 0x80, 0x80, 0x41}, 3},
        {"lead then lead", {0xE0, 0xC2, 0xA9}, 1},
        {"kosme then a surrogate (Autobahn 6.4)",
         {0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64},
         12},
        {"kosme then above U+10FFFF", {0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xF4, 0x90, 0x80, 0x80}, 6},
    };
    return samples;
}

// Inputs that end inside a code point: nothing wrong yet, but not complete either.
const std::vector<sample>& truncated_samples() {
    static const std::vector<sample> samples{
        {"C2", {0xC2}},
        {"E0 A0", {0xE0, 0xA0}},
        {"E1", {0xE1}},
        {"ED 9F", {0xED, 0x9F}},
        {"F0 90 80", {0xF0, 0x90, 0x80}},
        {"F4 8F BF", {0xF4, 0x8F, 0xBF}},
        {"F3", {0xF3}},
        {"text then E2 82", {0x61, 0x62, 0xE2, 0x82}},
    };
    return samples;
}

}  // namespace

TEST_CASE("the boundary code points of every sequence length are valid") {
    for (const auto& valid : valid_samples()) {
        CAPTURE(valid.name);
        utf8_validator validator;
        CHECK(feed(validator, valid.input.data(), valid.input.size()));
        CHECK(validator.complete());
        CHECK_FALSE(validator.failed());
        check_against_reference(valid.input);
    }
}

TEST_CASE("every Unicode scalar value is valid and every surrogate is not") {
    int wrong = 0;
    for (std::uint32_t code_point = 0; code_point <= 0x10FFFF; ++code_point) {
        const auto encoded = encode(code_point);
        const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
        utf8_validator validator;
        const bool ok = feed(validator, encoded.data(), encoded.size()) && validator.complete();
        if (ok == surrogate) {
            ++wrong;
            INFO("U+" << std::hex << code_point);
            CHECK(ok == !surrogate);
        }
    }
    CHECK(wrong == 0);
}

TEST_CASE("invalid input fails at the first byte that makes it impossible") {
    for (const auto& invalid : invalid_samples()) {
        CAPTURE(invalid.name);
        utf8_validator validator;
        CHECK_FALSE(feed(validator, invalid.input.data(), invalid.input.size()));
        CHECK(validator.failed());
        CHECK_FALSE(validator.complete());

        CHECK(validate_byte_by_byte(invalid.input).first_error == invalid.first_error);
        CHECK(reference_validate(invalid.input).first_error == invalid.first_error);
    }
}

TEST_CASE("input that stops inside a code point is not complete and can still be completed") {
    for (const auto& truncated : truncated_samples()) {
        CAPTURE(truncated.name);
        const auto& input = truncated.input;
        utf8_validator validator;
        CHECK(feed(validator, input.data(), input.size()));
        CHECK_FALSE(validator.complete());
        CHECK_FALSE(validator.failed());
        CHECK_FALSE(is_valid_utf8(reinterpret_cast<const std::byte*>(input.data()), input.size()));
        check_against_reference(input);

        // Every sample here accepts 80 as its next byte, so continuation bytes must finish it.
        const unsigned char continuation = 0x80;
        for (int added = 0; added < 3 && !validator.complete(); ++added) {
            CHECK(feed(validator, &continuation, 1));
        }
        CHECK(validator.complete());
    }
}

TEST_CASE("the verdict does not depend on how the input is split") {
    std::vector<bytes> inputs;
    for (const auto& s : valid_samples()) inputs.push_back(s.input);
    for (const auto& s : invalid_samples()) inputs.push_back(s.input);
    for (const auto& s : truncated_samples()) inputs.push_back(s.input);

    for (const auto& input : inputs) {
        CAPTURE(hex(input));
        const auto whole = validate_whole(input);
        for (std::size_t cut = 0; cut <= input.size(); ++cut) {
            CAPTURE(cut);
            CHECK(validate_in_pieces(input, {cut}) == whole);
        }
        CHECK(without_position(validate_byte_by_byte(input)) == whole);
        check_against_reference(input);
    }
}

TEST_CASE("a failed validator stays failed until reset") {
    const bytes bad{0xC0};
    const bytes good{0x61, 0x62, 0x63};
    utf8_validator validator;
    CHECK_FALSE(feed(validator, bad.data(), bad.size()));
    CHECK_FALSE(feed(validator, good.data(), good.size()));
    CHECK_FALSE(feed(validator, good.data(), 0));
    CHECK(validator.failed());
    CHECK_FALSE(validator.complete());

    validator.reset();
    CHECK_FALSE(validator.failed());
    CHECK(validator.complete());
    CHECK(feed(validator, good.data(), good.size()));
    CHECK(validator.complete());
}

TEST_CASE("reset forgets a code point left unfinished") {
    const bytes lead{0xE2};
    const bytes ascii{0x61};
    utf8_validator validator;
    CHECK(feed(validator, lead.data(), lead.size()));
    validator.reset();
    CHECK(validator.complete());
    CHECK(feed(validator, ascii.data(), ascii.size()));
    CHECK(validator.complete());
}

TEST_CASE("the validator state is a few bytes") {
    CHECK(sizeof(utf8_validator) <= 4);
}

TEST_CASE("is_valid_utf8 on whole strings") {
    CHECK(is_valid_utf8(std::string_view{}));
    CHECK(is_valid_utf8(std::string_view{"plain ASCII"}));
    CHECK(is_valid_utf8(std::string_view{"embedded\0NUL", 12}));
    // κόσμε
    CHECK(is_valid_utf8(std::string_view{"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"}));
    // Hello-µ@ßöäüàá-UTF-8!!
    CHECK(is_valid_utf8(std::string_view{"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"}));
    CHECK_FALSE(is_valid_utf8(std::string_view{"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64"}));
    CHECK_FALSE(is_valid_utf8(std::string_view{"truncated \xE2\x82"}));
    CHECK_FALSE(is_valid_utf8(std::string_view{"lone \x80 continuation"}));
    CHECK(is_valid_utf8(nullptr, 0));
}

TEST_CASE("errors and code points are found at every position of long ASCII and non-ASCII runs") {
    // Long enough to cross every vector width, the unrolled ASCII check and several DFA chunks.
    constexpr std::size_t max_length = 160;
    const bytes greek_letter{0xCE, 0xBA};
    const bytes emoji{0xF0, 0x9F, 0x98, 0x80};
    for (std::size_t length = 1; length <= max_length; ++length) {
        for (std::size_t position = 0; position < length; ++position) {
            bytes ascii(length, 'a');
            ascii[position] = 0xFF;
            check_against_reference(ascii);

            bytes letters;
            while (letters.size() < length) letters.insert(letters.end(), greek_letter.begin(), greek_letter.end());
            letters[position] = 0xC0;
            check_against_reference(letters);

            bytes with_emoji(length, 'a');
            with_emoji.insert(with_emoji.begin() + static_cast<std::ptrdiff_t>(position), emoji.begin(), emoji.end());
            check_against_reference(with_emoji);
            const bytes cut_emoji(with_emoji.begin(), with_emoji.begin() + static_cast<std::ptrdiff_t>(position + 2));
            check_against_reference(cut_emoji);
        }
    }
}

TEST_CASE("all inputs of up to two bytes, and up to four bytes from one byte of every class, match the reference") {
    for (unsigned a = 0; a < 256; ++a) {
        check_against_reference({static_cast<unsigned char>(a)});
        for (unsigned b = 0; b < 256; ++b) check_against_reference({static_cast<unsigned char>(a), static_cast<unsigned char>(b)});
    }
    // The edges of every range the rules of RFC 3629 distinguish.
    const bytes representatives{0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    for (const auto a : representatives) {
        for (const auto b : representatives) {
            for (const auto c : representatives) {
                check_against_reference({a, b, c});
                for (const auto d : representatives) check_against_reference({a, b, c, d});
            }
        }
    }
}

TEST_CASE("random inputs match the reference, however they are split") {
    std::mt19937 rng(20240611);
    const auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    const auto random_code_point = [&]() -> std::uint32_t {
        switch (below(6)) {
        case 0: case 1: return static_cast<std::uint32_t>(below(0x80));
        case 2: return static_cast<std::uint32_t>(0x80 + below(0x800 - 0x80));
        case 3: {
            const auto cp = static_cast<std::uint32_t>(0x800 + below(0x10000 - 0x800));
            return cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp;
        }
        case 4: return static_cast<std::uint32_t>(0x10000 + below(0x110000 - 0x10000));
        default: {
            constexpr std::uint32_t edges[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
            return edges[below(std::size(edges))];
        }
        }
    };

    for (int trial = 0; trial < 20'000; ++trial) {
        bytes input;
        if (trial % 4 == 0) {
            input.resize(below(40));
            for (auto& b : input) b = static_cast<unsigned char>(rng());
        } else {
            const std::size_t code_points = below(trial % 4 == 3 ? 300 : 40);
            for (std::size_t i = 0; i < code_points; ++i) {
                // Long ASCII stretches, so the vector path runs and hands over to the DFA mid-input.
                if (below(8) == 0) input.insert(input.end(), below(100), 'x');
                const auto encoded = encode(random_code_point());
                input.insert(input.end(), encoded.begin(), encoded.end());
            }
            const std::size_t mutations = below(3);
            for (std::size_t m = 0; m < mutations && !input.empty(); ++m) {
                const std::size_t at = below(input.size());
                switch (below(3)) {
                case 0: input[at] = static_cast<unsigned char>(rng()); break;
                case 1: input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), static_cast<unsigned char>(rng())); break;
                default: input.resize(at); break;
                }
            }
        }

        check_against_reference(input);

        std::vector<std::size_t> cuts;
        if (!input.empty()) {
            for (std::size_t i = 0, n = below(4); i < n; ++i) cuts.push_back(below(input.size() + 1));
        }
        std::sort(cuts.begin(), cuts.end());
        const auto expected = without_position(reference_validate(input));
        if (validate_in_pieces(input, cuts) != expected) {
            INFO("input " << hex(input));
            CHECK(validate_in_pieces(input, cuts) == expected);
        }
    }
}
