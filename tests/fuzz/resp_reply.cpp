// redis::resp::parse on arbitrary bytes (as they arrive from a Redis server, or from something that is
// not one). Properties:
//   - a complete reply consumes at least its type byte and at most the input, and parses the same from
//     exactly the bytes it consumed; every shorter prefix of those bytes is need_more (the parse is
//     restartable at any split, which the connection relies on);
//   - need_more is never said of an input whose prefix is complete or invalid (nor invalid of one
//     whose prefix needs more), and invalid stays invalid whatever follows;
//   - every view of the reply points into the input, and at most max_elements elements are kept;
//   - tighter limits never turn an invalid reply into a complete one.
#include <duplex/redis/resp.hpp>

#include "fuzz_support.hpp"

#include <string>
#include <string_view>

namespace resp = duplex::redis::resp;

namespace {

bool inside(std::string_view view, std::string_view input) {
    return view.empty() || (view.data() >= input.data() && view.data() + view.size() <= input.data() + input.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    resp::reply r;
    const auto whole = resp::parse(input, r);
    if (whole.status == resp::status::complete) {
        FUZZ_CHECK(whole.consumed >= 3 && whole.consumed <= size);
        FUZZ_CHECK(inside(r.top.text, input));
        FUZZ_CHECK(r.element_count <= resp::reply::max_elements);
        if (r.top.type == resp::kind::array) {
            FUZZ_CHECK(r.element_count == std::min<std::size_t>(static_cast<std::size_t>(r.top.integer), resp::reply::max_elements));
            for (std::size_t i = 0; i < r.element_count; ++i) FUZZ_CHECK(inside(r.elements[i].text, input));
        } else {
            FUZZ_CHECK(r.element_count == 0);
        }
        const auto exact = input.substr(0, whole.consumed);
        resp::reply again;
        const auto same = resp::parse(exact, again);
        FUZZ_CHECK(same.status == resp::status::complete && same.consumed == whole.consumed);
        FUZZ_CHECK(again.top.type == r.top.type && again.top.text == r.top.text && again.top.integer == r.top.integer);
        // Every split point (bounded, to keep an input cheap: the prefixes up to 512 bytes).
        for (std::size_t n = 0; n < whole.consumed && n < 512; ++n)
            FUZZ_CHECK(resp::parse(exact.substr(0, n), again).status == resp::status::need_more);
    } else {
        FUZZ_CHECK(whole.consumed == 0 && r.element_count == 0);
        // What a prefix says, the whole cannot contradict: a prefix is need_more, or the same verdict.
        for (std::size_t n = 0; n < size && n < 512; ++n) {
            const auto prefix = resp::parse(input.substr(0, n), r).status;
            if (whole.status == resp::status::need_more) FUZZ_CHECK(prefix == resp::status::need_more);
            else FUZZ_CHECK(prefix != resp::status::complete);
        }
        if (whole.status == resp::status::invalid) {
            std::string more(input);
            more += "\r\n$1\r\nx\r\n:1\r\n";
            FUZZ_CHECK(resp::parse(more, r).status == resp::status::invalid);
        }
    }
    resp::limits tight;
    tight.max_bulk_bytes = 16;
    tight.max_line_bytes = 16;
    tight.max_array_elements = 4;
    tight.max_depth = 2;
    const auto constrained = resp::parse(input, r, tight);
    if (constrained.status == resp::status::complete) {
        FUZZ_CHECK(whole.status == resp::status::complete && constrained.consumed == whole.consumed);
    }
    if (whole.status == resp::status::invalid) FUZZ_CHECK(constrained.status == resp::status::invalid);
    return 0;
}
