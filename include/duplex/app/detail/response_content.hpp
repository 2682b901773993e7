// How the app host settles a response's content fields before writing it, over HTTP/1.1 and HTTP/2 alike.
#pragma once

#include <duplex/app/http_context.hpp>

#include <string>

namespace duplex::detail {

// 1xx, 204 and 304 have no content and no Content-Length (RFC 9110 §8.6: a 304 saying 0 would contradict
// the 200 it stands for): their body and file are dropped. Any other response gets the Content-Length of
// its body or file, and a text body without a Content-Type is plain UTF-8 text.
// Returns whether the response may carry content. (HTTP/2 turns a 1xx final status into 500 before this.)
inline bool settle_content_fields(http_response& response) {
    const auto status = response.status_code;
    if (status < 200 || status == 204 || status == 304) {
        response.body.clear();
        response.file.reset();
        response.headers.erase("Content-Length");
        return false;
    }
    if (!response.body.empty() && !response.file && !response.headers.contains("Content-Type"))
        response.headers.add("Content-Type", "text/plain; charset=utf-8");
    response.headers.set("Content-Length", std::to_string(response.file ? response.file->size() : response.body.size()));
    return true;
}

}  // namespace duplex::detail
