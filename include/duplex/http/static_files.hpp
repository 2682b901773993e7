// Mapping a request path to a file under a content root, with no way out of it, and the content
// type of what is served.
#pragma once

#include <duplex/http/request.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace duplex::http {

// Decodes %XX escapes of a URL path. Refuses (nullopt) a malformed escape and any escape that would
// change the path's structure or smuggle a control byte: %00–%1F, %2F ('/'), %5C ('\').
inline std::optional<std::string> percent_decode_path(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] != '%') {
            out += path[i];
            continue;
        }
        if (i + 2 >= path.size()) return std::nullopt;
        const int high = detail::hex_value(path[i + 1]), low = detail::hex_value(path[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        const auto c = static_cast<unsigned char>(high * 16 + low);
        if (c < 0x20 || c == '/' || c == '\\' || c == 0x7F) return std::nullopt;
        out += static_cast<char>(c);
        i += 2;
    }
    return out;
}

// The file a request path names under `root` (which must be canonical: see std::filesystem::canonical),
// or nullopt when it names nothing servable: a ".." or "." segment (also when percent-encoded), a
// backslash, a control byte, something that is not a regular file, or anything whose real path —
// symlinks resolved — lies outside the root. A directory serves its index.html.
inline std::optional<std::filesystem::path> resolve_static_file(const std::filesystem::path& root,
                                                                std::string_view request_path) {
    const auto decoded = percent_decode_path(request_path);
    if (!decoded || decoded->empty() || decoded->front() != '/') return std::nullopt;
    std::filesystem::path candidate = root;
    std::string_view rest = *decoded;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        const auto segment = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
        if (segment.empty()) continue;
        if (segment == "." || segment == ".." || segment.find('\\') != std::string_view::npos ||
            segment.find(':') != std::string_view::npos)
            return std::nullopt;
        candidate /= std::filesystem::path(std::string(segment));
    }
    std::error_code ec;
    if (std::filesystem::is_directory(candidate, ec)) candidate /= "index.html";
    const auto real = std::filesystem::canonical(candidate, ec);
    if (ec || !std::filesystem::is_regular_file(real, ec)) return std::nullopt;
    // Component-wise prefix test: "/srv/www-evil" must not pass for root "/srv/www".
    auto r = root.begin();
    auto p = real.begin();
    for (; r != root.end(); ++r, ++p)
        if (p == real.end() || *r != *p) return std::nullopt;
    return real;
}

inline std::string_view content_type_for(const std::filesystem::path& file) {
    const auto ext = file.extension().string();
    struct entry {
        std::string_view ext, type;
    };
    static constexpr entry types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},               {".gif", "image/gif"},
        {".ico", "image/x-icon"},              {".webp", "image/webp"},
        {".wasm", "application/wasm"},         {".woff2", "font/woff2"},
        {".map", "application/json"},          {".xml", "application/xml"},
    };
    for (const auto& t : types)
        if (t.ext == ext) return t.type;
    return "application/octet-stream";
}

}  // namespace duplex::http
