// duplex — writing HTTP/1.1 response heads.
#pragma once

#include <duplex/http/parser.hpp>
#include <duplex/http/request.hpp>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>

namespace duplex::http {

// The RFC 9110 reason phrase of a status code (plus 426, 428, 429, 431 and 451 from later RFCs);
// empty for codes it does not know, which still makes a valid status line.
inline std::string_view reason_phrase(int status_code) noexcept {
    switch (status_code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return {};
    }
}

// Appends "name: value\r\n". Throws std::invalid_argument when the name is not a token or the value
// holds a control character other than HTAB: a CR or LF smuggled in from application data would
// otherwise split the head (response splitting).
inline void write_field(std::string& out, std::string_view name, std::string_view value) {
    if (!detail::is_token(name)) throw std::invalid_argument("invalid HTTP header name");
    if (!std::all_of(value.begin(), value.end(), [](char c) { return detail::in(detail::field_value_chars, c); }))
        throw std::invalid_argument("control character in HTTP header value");
    out.append(name).append(": ").append(value).append("\r\n");
}

inline void write_fields(std::string& out, const headers& h) {
    for (const auto& field : h) write_field(out, field.name, field.value);
}

// Appends "HTTP/1.1 <code> <reason>\r\n", the fields and the blank line that ends the head.
// Throws std::invalid_argument for a code outside 100–999, a reason with control characters or an
// invalid field, and then leaves `out` as it was.
inline void write_response_head(std::string& out, int status_code, std::string_view reason, const headers& h) {
    if (status_code < 100 || status_code > 999) throw std::invalid_argument("HTTP status code out of range");
    if (!std::all_of(reason.begin(), reason.end(), [](char c) { return detail::in(detail::field_value_chars, c); }))
        throw std::invalid_argument("control character in HTTP reason phrase");
    const auto original_size = out.size();
    char code[3];
    std::to_chars(code, code + 3, status_code);
    out.append("HTTP/1.1 ").append(code, 3).append(" ").append(reason).append("\r\n");
    try {
        write_fields(out, h);
    } catch (...) {
        out.resize(original_size);
        throw;
    }
    out.append("\r\n");
}

inline void write_response_head(std::string& out, int status_code, const headers& h) {
    write_response_head(out, status_code, reason_phrase(status_code), h);
}

}  // namespace duplex::http
