// duplex — incremental, sans-I/O parsers for HTTP/1.1 message heads (RFC 9112).
//
// Policy, strict where leniency has caused request smuggling and practical elsewhere:
// - Lines end with CRLF. A bare LF is accepted as a line ending too (RFC 9112 §2.2 allows it) unless
//   parser_limits::accept_bare_lf is false; a CR that is not followed by LF is always an error.
// - One empty line before a request line is ignored (RFC 9112 §2.2); a second one, or any before a
//   status line, is an error.
// - Obsolete line folding, whitespace between a field name and its colon, and control characters
//   (other than HTAB) in field values are errors (400), never repaired.
// - Field values are trimmed of surrounding spaces and tabs; the parser does not interpret any field
//   (Host, Content-Length, Transfer-Encoding are for the layer above).
// - Every limit is checked as bytes arrive, so an oversized head is rejected as soon as it crosses the
//   limit, not after it ends.
// - feed() returns the bytes used; at an error that count stops at the offending byte, and afterwards
//   (or once done) feed() uses nothing until reset().
#pragma once

#include <duplex/http/request.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace duplex::http {

struct parser_limits {
    std::size_t max_head_bytes = 16 * 1024;   // whole head incl. start line and blank line → 431
    std::size_t max_target_bytes = 8 * 1024;  // request target → 414
    std::size_t max_header_count = 100;       // → 431
    bool accept_bare_lf = true;               // treat a lone LF as a line ending (else 400)
};

enum class parse_status { need_more, done, error };

namespace detail {

using char_table = std::array<bool, 256>;

template <class Predicate>
constexpr char_table make_char_table(Predicate p) {
    char_table t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = p(static_cast<unsigned char>(c));
    return t;
}

// tchar (RFC 9110 §5.6.2): methods and field names.
inline constexpr char_table token_chars = make_char_table([](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
});
// Visible ASCII: a request target is a URI reference, which never holds spaces, controls or raw non-ASCII.
inline constexpr char_table target_chars = make_char_table([](unsigned char c) { return c > 0x20 && c < 0x7F; });
// field-vchar, SP and HTAB (RFC 9110 §5.5); also what a reason phrase may hold.
inline constexpr char_table field_value_chars =
    make_char_table([](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); });

inline constexpr bool in(const char_table& table, char c) noexcept {
    return table[static_cast<unsigned char>(c)];
}

inline constexpr bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return in(token_chars, c); });
}

// The state machine shared by request_parser and response_parser; only the start line differs.
template <class Message>
class head_parser {
    static constexpr bool parses_request = std::is_same_v<Message, request>;

public:
    explicit head_parser(parser_limits limits) noexcept : limits_(limits) { reset(); }

    // Consumes bytes of the head and returns how many of `data` were used. It stops right after the
    // blank line that ends the head (what follows belongs to the body or to the WebSocket stream) or at
    // an error. Each byte is examined once, whatever the chunking.
    std::size_t feed(std::string_view data) {
        if (state_ == state::done || state_ == state::failed) return 0;
        const std::size_t budget = limits_.max_head_bytes - head_bytes_;
        const std::size_t allowed = std::min(data.size(), budget);
        const std::size_t used = parse(data.data(), data.data() + allowed);
        head_bytes_ += used;
        if (state_ != state::done && state_ != state::failed && data.size() > allowed)
            fail(431, parses_request ? "request head too large" : "response head too large");
        return used;
    }

    parse_status status() const noexcept {
        if (state_ == state::done) return parse_status::done;
        if (state_ == state::failed) return parse_status::error;
        return parse_status::need_more;
    }

    // 400 malformed, 414 target too long, 431 head or field count too large, 505 version not supported;
    // 0 unless status() == error. A response parser classifies its errors the same way.
    int error_status() const noexcept { return error_status_; }
    std::string_view error_message() const noexcept { return error_message_; }

    // The message; complete once status() == done.
    Message& get() noexcept { return message_; }
    const Message& get() const noexcept { return message_; }

    // Bytes of the head consumed so far.
    std::size_t head_bytes() const noexcept { return head_bytes_; }
    const parser_limits& limits() const noexcept { return limits_; }

    // Ready for the next message on a keep-alive connection; keeps the limits and reuses storage.
    void reset() noexcept {
        state_ = parses_request ? state::request_start : state::status_version;
        error_status_ = 0;
        error_message_ = {};
        head_bytes_ = 0;
        version_length_ = 0;
        status_digits_ = 0;
        leading_empty_line_seen_ = false;
        if constexpr (parses_request) {
            message_.method.clear();
            message_.target.clear();
            message_.path.clear();
            message_.query.clear();
        } else {
            message_.status_code = 0;
            message_.reason.clear();
        }
        message_.version_major = 1;
        message_.version_minor = 1;
        message_.headers.clear();
    }

private:
    enum class state : std::uint8_t {
        request_start,  // before the method: one empty line is tolerated here
        method,
        target,
        request_version,
        status_version,
        status_code,
        status_reason,
        field_start,
        field_name,
        field_name_space,  // whitespace after a field name: an error whose message depends on what follows
        field_value,
        line_feed,  // after a CR, which must be followed by LF
        done,
        failed,
    };
    enum class line : std::uint8_t { leading_empty, request, status, field, end_of_head };

    bool fail(int status, std::string_view message) noexcept {
        state_ = state::failed;
        error_status_ = status;
        error_message_ = message;
        return false;
    }

    header& current_field() noexcept { return message_.headers.fields_.back(); }

    // `p` points at CR or LF.
    bool line_break(const char*& p, line kind) {
        if (*p == '\r') {
            ++p;
            pending_line_ = kind;
            state_ = state::line_feed;
            return true;
        }
        if (!limits_.accept_bare_lf) return fail(400, "bare LF line ending");
        ++p;
        return end_line(kind);
    }

    bool end_line(line kind) {
        switch (kind) {
        case line::leading_empty:
            leading_empty_line_seen_ = true;
            state_ = state::request_start;
            return true;
        case line::request:
        case line::status:
            return end_start_line();
        case line::field: {
            auto& value = current_field().value;
            while (!value.empty() && is_optional_whitespace(value.back())) value.pop_back();
            state_ = state::field_start;
            return true;
        }
        case line::end_of_head:
            state_ = state::done;
            return true;
        }
        return true;
    }

    bool end_start_line() {
        // version_text_ is "HTTP/d.d": the shape was checked byte by byte.
        message_.version_major = version_text_[5] - '0';
        message_.version_minor = version_text_[7] - '0';
        if (message_.version_major != 1) return fail(505, "HTTP version not supported");
        if constexpr (parses_request) {
            const std::string_view target = message_.target;
            const auto question = target.find('?');
            message_.path.assign(path_of_target(target.substr(0, question)));
            if (question != std::string_view::npos) message_.query.assign(target.substr(question + 1));
        } else {
            if (message_.status_code < 100) return fail(400, "malformed status code");
        }
        state_ = state::field_start;
        return true;
    }

    static constexpr bool version_char_fits(std::size_t position, char c) noexcept {
        constexpr std::string_view prefix = "HTTP/";
        if (position < prefix.size()) return c == prefix[position];
        if (position == 6) return c == '.';
        return c >= '0' && c <= '9';
    }

    // Parses [begin, end); returns how many bytes it used. On error the count stops at the offending byte.
    std::size_t parse(const char* const begin, const char* const end) {
        const char* p = begin;
        while (p != end) {
            bool ok = true;
            switch (state_) {
            case state::request_start:
            case state::method:
            case state::target:
            case state::request_version:
                if constexpr (parses_request) ok = parse_request_line(p, end);
                break;
            case state::status_version:
            case state::status_code:
            case state::status_reason:
                if constexpr (!parses_request) ok = parse_status_line(p, end);
                break;
            case state::field_start:
            case state::field_name:
            case state::field_name_space:
            case state::field_value:
                ok = parse_fields(p, end);
                break;
            case state::line_feed:
                if (*p != '\n') {
                    ok = fail(400, "CR not followed by LF");
                    break;
                }
                ++p;
                ok = end_line(pending_line_);
                break;
            case state::done:
            case state::failed:
                return static_cast<std::size_t>(p - begin);
            }
            if (!ok) break;
        }
        return static_cast<std::size_t>(p - begin);
    }

    // The parse_* steps advance `p` while the state stays theirs. They return false on error, with `p`
    // at the offending byte.
    bool parse_request_line(const char*& p, const char* const end) {
        while (p != end) {
            switch (state_) {
            case state::request_start:
                if (*p == '\r' || *p == '\n') {
                    if (leading_empty_line_seen_) return fail(400, "more than one empty line before the request line");
                    return line_break(p, line::leading_empty);
                }
                state_ = state::method;
                [[fallthrough]];

            case state::method: {
                const char* start = p;
                while (p != end && in(token_chars, *p)) ++p;
                message_.method.append(start, p);
                if (p == end) return true;
                if (*p != ' ') return fail(400, "invalid character in method");
                if (message_.method.empty()) return fail(400, "request line does not start with a method");
                ++p;
                state_ = state::target;
                continue;
            }

            case state::target: {
                auto& target = message_.target;
                // Scan at most one byte past the limit, so a huge target is refused as it arrives.
                const std::size_t available = static_cast<std::size_t>(end - p);
                const std::size_t room = limits_.max_target_bytes - target.size();
                const char* run_end = p + (room < available ? room + 1 : available);
                const char* start = p;
                while (p != run_end && in(target_chars, *p)) ++p;
                target.append(start, p);
                if (target.size() > limits_.max_target_bytes) {
                    --p;
                    return fail(414, "request target too long");
                }
                if (p == end) return true;
                if (*p == ' ') {
                    if (target.empty()) return fail(400, "empty request target");
                    ++p;
                    state_ = state::request_version;
                    continue;
                }
                return fail(400, (*p == '\r' || *p == '\n') ? "request line without an HTTP version"
                                                            : "invalid character in request target");
            }

            case state::request_version:
                if (version_length_ == version_text_.size()) {
                    if (*p == '\r' || *p == '\n') return line_break(p, line::request);
                    return fail(400, "malformed HTTP version");
                }
                if (!take_version_char(p)) return false;
                continue;

            default:
                return true;
            }
        }
        return true;
    }

    bool parse_status_line(const char*& p, const char* const end) {
        while (p != end) {
            switch (state_) {
            case state::status_version:
                if (version_length_ == version_text_.size()) {
                    if (*p != ' ') return fail(400, "malformed HTTP version");
                    ++p;
                    state_ = state::status_code;
                    continue;
                }
                if (!take_version_char(p)) return false;
                continue;

            case state::status_code:
                while (p != end && status_digits_ < 3 && *p >= '0' && *p <= '9') {
                    message_.status_code = message_.status_code * 10 + (*p - '0');
                    ++status_digits_;
                    ++p;
                }
                if (p == end) return true;
                if (status_digits_ == 3) {
                    if (*p == ' ') {
                        ++p;
                        state_ = state::status_reason;
                        continue;
                    }
                    // The reason phrase is optional, and some servers drop the space before it too.
                    if (*p == '\r' || *p == '\n') return line_break(p, line::status);
                }
                return fail(400, "malformed status code");

            case state::status_reason: {
                const char* start = p;
                while (p != end && in(field_value_chars, *p)) ++p;
                message_.reason.append(start, p);
                if (p == end) return true;
                if (*p == '\r' || *p == '\n') return line_break(p, line::status);
                return fail(400, "control character in reason phrase");
            }

            default:
                return true;
            }
        }
        return true;
    }

    bool take_version_char(const char*& p) {
        if (!version_char_fits(version_length_, *p)) return fail(400, "malformed HTTP version");
        version_text_[version_length_++] = *p++;
        return true;
    }

    bool parse_fields(const char*& p, const char* const end) {
        while (p != end) {
            switch (state_) {
            case state::field_start:
                if (*p == '\r' || *p == '\n') return line_break(p, line::end_of_head);
                if (*p == ' ' || *p == '\t')
                    return fail(400, message_.headers.empty() ? "whitespace before the first header field"
                                                              : "obsolete line folding is not supported");
                if (!in(token_chars, *p))
                    return fail(400, *p == ':' ? "empty header name" : "invalid character in header name");
                if (message_.headers.size() >= limits_.max_header_count) return fail(431, "too many header fields");
                message_.headers.fields_.emplace_back();
                state_ = state::field_name;
                [[fallthrough]];

            case state::field_name: {
                const char* start = p;
                while (p != end && in(token_chars, *p)) ++p;
                current_field().name.append(start, p);
                if (p == end) return true;
                if (*p == ':') {
                    ++p;
                    state_ = state::field_value;
                    continue;
                }
                if (*p == '\r' || *p == '\n') return fail(400, "header line without a colon");
                if (!is_optional_whitespace(*p)) return fail(400, "invalid character in header name");
                state_ = state::field_name_space;
                [[fallthrough]];
            }

            case state::field_name_space:
                // Always an error (RFC 9112 §5.1); looking past the whitespace only picks the message.
                while (p != end && is_optional_whitespace(*p)) ++p;
                if (p == end) return true;
                if (*p == ':') return fail(400, "whitespace between header name and colon");
                if (*p == '\r' || *p == '\n') return fail(400, "header line without a colon");
                return fail(400, "whitespace inside header name");

            case state::field_value: {
                auto& value = current_field().value;
                if (value.empty()) {
                    while (p != end && is_optional_whitespace(*p)) ++p;
                    if (p == end) return true;
                }
                const char* start = p;
                while (p != end && in(field_value_chars, *p)) ++p;
                value.append(start, p);
                if (p == end) return true;
                if (*p == '\r' || *p == '\n') {
                    if (!line_break(p, line::field)) return false;
                    continue;
                }
                return fail(400, "control character in header value");
            }

            default:
                return true;
            }
        }
        return true;
    }

    parser_limits limits_;
    Message message_;
    state state_ = state::request_start;
    line pending_line_ = line::request;
    bool leading_empty_line_seen_ = false;
    std::uint8_t version_length_ = 0;
    std::uint8_t status_digits_ = 0;
    std::array<char, 8> version_text_{};
    int error_status_ = 0;
    std::string_view error_message_;
    std::size_t head_bytes_ = 0;
};

}  // namespace detail

// Parses the head of a request, as a server receives it.
class request_parser : public detail::head_parser<request> {
public:
    explicit request_parser(parser_limits limits = {}) noexcept : head_parser(limits) {}
};

// Parses the head of a response ("HTTP/1.1 101 Switching Protocols"), as a client receives it.
class response_parser : public detail::head_parser<response> {
public:
    explicit response_parser(parser_limits limits = {}) noexcept : head_parser(limits) {}
};

}  // namespace duplex::http
