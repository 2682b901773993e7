// The static-files middleware of duplex::app (ASP.NET's UseStaticFiles): GET and HEAD for files under
// a folder, with their content types; anything else goes on down the pipeline.
#pragma once

#include <duplex/app/http_context.hpp>
#include <duplex/app/pipeline.hpp>
#include <duplex/config.hpp>
#include <duplex/http/static_files.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace duplex {

// Serves files under `root` for GET and HEAD (a directory serves its index.html); anything else, or a
// path that leaves the folder in any way, goes on down the pipeline. `root` must exist.
inline middleware static_files(const std::filesystem::path& root) {
    return [root = std::filesystem::canonical(root)](http_context& ctx, next rest) -> awaitable<void> {
        if (ctx.request.method != "GET" && ctx.request.method != "HEAD") {
            co_await rest(ctx);
            co_return;
        }
        const auto file = http::resolve_static_file(root, ctx.request.path);
        std::ifstream in;
        if (file) in.open(*file, std::ios::binary);
        if (!in.is_open()) {
            co_await rest(ctx);
            co_return;
        }
        std::ostringstream content;
        content << in.rdbuf();
        ctx.response.status_code = 200;
        ctx.response.body = std::move(content).str();
        ctx.response.headers.set("Content-Type", std::string(http::content_type_for(*file)));
    };
}

}  // namespace duplex
