// duplex::http_protocols — which HTTP versions an https:// endpoint offers through ALPN (Kestrel's
// HttpProtocols): HTTP/1.1 and HTTP/2 by default (h2 preferred), or either alone.
#pragma once

#include <string>
#include <vector>

namespace duplex {

enum class http_protocols { http1, http2, http1_and_http2 };

// The ALPN list an https:// endpoint offers for `protocols`, in order of preference.
inline std::vector<std::string> alpn_protocols_for(http_protocols protocols) {
    switch (protocols) {
    case http_protocols::http1: return {"http/1.1"};
    case http_protocols::http2: return {"h2"};
    default: return {"h2", "http/1.1"};
    }
}

}  // namespace duplex
