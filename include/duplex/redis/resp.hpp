// duplex::redis::resp — RESP2, the protocol of every Redis since 1.2, sans-I/O: commands written into a
// string, and replies parsed from whatever bytes have arrived so far, without copying them.
//
//   std::string out;
//   resp::append_command(out, "PUBLISH", channel, payload);   // *3\r\n$7\r\nPUBLISH\r\n$…
//   resp::reply r;
//   const auto [status, used] = resp::parse(received, r);      // complete, need_more or invalid
//
// Requests are arrays of bulk strings. Replies are one of five types: simple strings (+OK), errors
// (-ERR …), integers (:1), bulk strings ($5\r\nhello, $-1 for null) and arrays (*3 …, *-1 for null).
// A parsed reply is views into the input: valid while those bytes are. The top value and the first
// max_elements elements of an array are kept (pub/sub pushes have 3 or 4); deeper levels and further
// elements are checked and skipped.
//
// parse() is restartable: given a prefix of a reply it says need_more and keeps nothing, so the caller
// appends what arrives and calls again from the same start. Bulk contents are skipped by their length,
// so a retry costs a scan of the headers only.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace duplex::redis::resp {

// ---- requests ----

inline void append_length_line(std::string& out, char type, std::size_t n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out += type;
    out.append(digits, end);
    out += "\r\n";
}

inline void append_array_header(std::string& out, std::size_t elements) { append_length_line(out, '*', elements); }

// One bulk string made of `parts` laid end to end (a header and a payload, say, without joining them first).
inline void append_bulk(std::string& out, std::span<const std::string_view> parts) {
    std::size_t size = 0;
    for (const auto p : parts) size += p.size();
    append_length_line(out, '$', size);
    for (const auto p : parts) out.append(p);
    out += "\r\n";
}

inline void append_bulk(std::string& out, std::string_view text) { append_bulk(out, std::span(&text, 1)); }

// A command: an array of bulk strings (append_command_of: from a list made at run time).
template <class... Args>
void append_command(std::string& out, const Args&... args) {
    append_array_header(out, sizeof...(args));
    (append_bulk(out, std::string_view(args)), ...);
}

inline void append_command_of(std::string& out, std::span<const std::string_view> args) {
    append_array_header(out, args.size());
    for (const auto a : args) append_bulk(out, a);
}

// ---- replies ----

enum class kind : std::uint8_t { simple_string, error, integer, bulk_string, array, null };

struct value {
    kind type = kind::null;
    std::string_view text;     // simple string, error, bulk string
    std::int64_t integer = 0;  // integer; the element count of an array

    bool is(std::string_view s) const noexcept {
        return (type == kind::bulk_string || type == kind::simple_string) && text == s;
    }
};

struct reply {
    static constexpr std::size_t max_elements = 4;

    value top;
    // An array's first elements (nested arrays show as kind::array with their count only).
    std::array<value, max_elements> elements{};
    std::size_t element_count = 0;  // how many of `elements` are set: min(top.integer, max_elements)

    bool is_error() const noexcept { return top.type == kind::error; }
    // An array's element i as text (empty when it is not a string).
    std::string_view text(std::size_t i) const noexcept { return i < element_count ? elements[i].text : std::string_view(); }
};

struct limits {
    std::size_t max_bulk_bytes = 512u << 20;  // Redis' own proto-max-bulk-len default
    std::size_t max_line_bytes = 64u << 10;   // simple strings, errors, and length lines
    std::size_t max_array_elements = 1u << 20;
    std::size_t max_depth = 8;
};

enum class status { complete, need_more, invalid };

struct parse_result {
    resp::status status;
    std::size_t consumed = 0;  // bytes of input the reply took (when complete)
};

namespace detail {

class parser {
public:
    parser(std::string_view input, const limits& l) : in_(input), limits_(l) {}

    status value_at(std::size_t depth, value* into, reply* top) {
        if (pos_ >= in_.size()) return status::need_more;
        const char type = in_[pos_++];
        std::string_view line;
        if (const auto s = read_line(line); s != status::complete) return s;
        switch (type) {
        case '+':
        case '-':
            if (into) *into = {type == '+' ? kind::simple_string : kind::error, line, 0};
            return status::complete;
        case ':': {
            std::int64_t n = 0;
            if (!integer(line, n)) return status::invalid;
            if (into) *into = {kind::integer, {}, n};
            return status::complete;
        }
        case '$': {
            std::int64_t n = 0;
            if (!integer(line, n) || n < -1 || (n >= 0 && static_cast<std::uint64_t>(n) > limits_.max_bulk_bytes))
                return status::invalid;
            if (n == -1) {
                if (into) *into = {kind::null, {}, 0};
                return status::complete;
            }
            const auto size = static_cast<std::size_t>(n);
            if (in_.size() - pos_ < size + 2) return status::need_more;
            if (in_[pos_ + size] != '\r' || in_[pos_ + size + 1] != '\n') return status::invalid;
            if (into) *into = {kind::bulk_string, in_.substr(pos_, size), 0};
            pos_ += size + 2;
            return status::complete;
        }
        case '*': {
            std::int64_t n = 0;
            if (!integer(line, n) || n < -1 || (n >= 0 && static_cast<std::uint64_t>(n) > limits_.max_array_elements))
                return status::invalid;
            if (n == -1) {
                if (into) *into = {kind::null, {}, 0};
                return status::complete;
            }
            if (into) *into = {kind::array, {}, n};
            if (depth + 1 > limits_.max_depth) return status::invalid;
            for (std::int64_t i = 0; i < n; ++i) {
                value* element = nullptr;
                if (top && static_cast<std::size_t>(i) < reply::max_elements) {
                    element = &top->elements[static_cast<std::size_t>(i)];
                    top->element_count = static_cast<std::size_t>(i) + 1;
                }
                if (const auto s = value_at(depth + 1, element, nullptr); s != status::complete) return s;
            }
            return status::complete;
        }
        default: return status::invalid;
        }
    }

    std::size_t position() const noexcept { return pos_; }

private:
    status read_line(std::string_view& line) {
        const auto end = in_.find("\r\n", pos_);
        if (end == std::string_view::npos) {
            // A lone '\r' at the very end may be half of the terminator.
            return in_.size() - pos_ > limits_.max_line_bytes ? status::invalid : status::need_more;
        }
        if (end - pos_ > limits_.max_line_bytes) return status::invalid;
        line = in_.substr(pos_, end - pos_);
        pos_ = end + 2;
        return status::complete;
    }

    static bool integer(std::string_view text, std::int64_t& n) {
        if (text.empty()) return false;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        return ec == std::errc{} && end == text.data() + text.size();
    }

    std::string_view in_;
    const limits& limits_;
    std::size_t pos_ = 0;
};

}  // namespace detail

// One reply from the start of `input`.
inline parse_result parse(std::string_view input, reply& out, const limits& l = {}) {
    out.element_count = 0;
    detail::parser p(input, l);
    const auto s = p.value_at(0, &out.top, &out);
    if (s != status::complete) {
        out.element_count = 0;
        return {s, 0};
    }
    return {status::complete, p.position()};
}

}  // namespace duplex::redis::resp
