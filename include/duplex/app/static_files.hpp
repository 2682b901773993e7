// The static-files middleware of duplex::app (ASP.NET's UseStaticFiles): GET and HEAD for files under
// a folder, with their content types, validators (ETag, Last-Modified: 304 for a current copy) and
// single byte ranges (206, 416); anything else goes on down the pipeline. The file is sent as the
// client reads it, never read whole; HEAD looks at its metadata only.
#pragma once

#include <duplex/app/http_context.hpp>
#include <duplex/app/pipeline.hpp>
#include <duplex/config.hpp>
#include <duplex/http/conditional.hpp>
#include <duplex/http/file_body.hpp>
#include <duplex/http/range.hpp>
#include <duplex/http/static_files.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace duplex {

// Answers a GET or HEAD with `file`: 304 when the client's copy is current (If-None-Match,
// If-Modified-Since), 206 for one satisfiable byte range of a GET (unless If-Range says the client's
// copy is another), 416 for a range past the end, else 200.
inline void serve_file(http_context& ctx, http::file_body file, std::string_view content_type) {
    auto& response = ctx.response;
    const auto validators =
        http::make_file_validators(file.file_size(), file.modified_seconds(), file.modified_nanoseconds());
    response.headers.set("ETag", validators.etag);
    response.headers.set("Last-Modified", validators.last_modified);
    response.headers.set("Accept-Ranges", "bytes");
    if (http::is_not_modified(ctx.request, validators)) {
        response.status_code = 304;
        return;
    }
    response.status_code = 200;
    const auto range_field = ctx.request.headers.get("Range");
    if (range_field && ctx.request.method == "GET" && http::range_applies(ctx.request, validators)) {
        const auto range = http::parse_byte_range(*range_field, file.file_size());
        const auto size = std::to_string(file.file_size());
        if (range.result == http::byte_range_request::outcome::unsatisfiable) {
            response.status_code = 416;
            response.headers.set("Content-Range", "bytes */" + size);
            return;
        }
        if (range.result == http::byte_range_request::outcome::partial) {
            response.status_code = 206;
            response.headers.set("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                      std::to_string(range.last) + "/" + size);
            file.select(range.first, range.size());
        }
    }
    response.headers.set("Content-Type", std::string(content_type));
    response.file = std::move(file);
}

// Serves files under `root` for GET and HEAD (a directory serves its index.html); anything else, or a
// path that leaves the folder in any way, goes on down the pipeline. `root` must exist.
inline middleware static_files(const std::filesystem::path& root) {
    return [root = std::filesystem::canonical(root)](http_context& ctx, next rest) -> awaitable<void> {
        if (ctx.request.method != "GET" && ctx.request.method != "HEAD") {
            co_await rest(ctx);
            co_return;
        }
        const auto path = http::resolve_static_file(root, ctx.request.path);
        auto file = path ? http::file_body::open(*path) : std::nullopt;
        if (!file) {
            co_await rest(ctx);
            co_return;
        }
        serve_file(ctx, std::move(*file), http::content_type_for(*path));
    };
}

}  // namespace duplex
