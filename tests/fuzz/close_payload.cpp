// parse_close_payload on arbitrary payloads: it accepts exactly the empty payload and a valid code
// followed by valid UTF-8, says why it refuses the rest, and its reason points into the payload.
#include <duplex/websocket/close_status.hpp>

#include "fuzz_support.hpp"

using duplex::close_status;
using namespace duplex::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The 125-byte limit of control frames is the stream's; the parser takes any size.
    close_status failure = close_status::normal_closure;
    const auto parsed = parse_close_payload(fuzz::as_bytes(data), size, failure);
    if (size == 0) {
        FUZZ_CHECK(parsed && parsed->status == close_status::empty && parsed->reason.empty());
        return 0;
    }
    if (size == 1) {
        FUZZ_CHECK(!parsed && failure == close_status::protocol_error);
        return 0;
    }
    const auto code = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
    const bool code_ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                         (code >= 3000 && code <= 4999);
    FUZZ_CHECK(is_valid_wire_code(code) == code_ok);
    const auto reason = fuzz::as_text({data + 2, size - 2});
    if (!code_ok) {
        FUZZ_CHECK(!parsed && failure == close_status::protocol_error);
    } else if (!fuzz::reference_valid_utf8(reason)) {
        FUZZ_CHECK(!parsed && failure == close_status::invalid_payload_data);
    } else {
        FUZZ_CHECK(parsed.has_value());
        FUZZ_CHECK(static_cast<std::uint16_t>(parsed->status) == code);
        FUZZ_CHECK(parsed->reason.data() == reason.data() && parsed->reason.size() == reason.size());
        FUZZ_CHECK(failure == close_status::normal_closure);  // untouched on success
    }
    return 0;
}
