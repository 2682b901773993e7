// The URLs an app listens on ("http://host:port;https://host:port"), as ASP.NET's --urls takes them.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::detail {

struct listen_url {
    std::string scheme, host, port;
    std::string text;  // as given, for messages
};

// "http://host:port[;https://host:port…]", hosts may be names, IPv4 or [IPv6]; port 0 picks a free one.
inline std::vector<listen_url> parse_listen_urls(std::string_view urls) {
    std::vector<listen_url> out;
    while (!urls.empty()) {
        const auto end = urls.find(';');
        auto url = urls.substr(0, end);
        urls = end == std::string_view::npos ? std::string_view{} : urls.substr(end + 1);
        if (url.empty()) continue;
        const auto scheme_end = url.find("://");
        if (scheme_end == std::string_view::npos) throw std::invalid_argument("not a URL: " + std::string(url));
        listen_url parsed;
        parsed.text = std::string(url);
        parsed.scheme = std::string(url.substr(0, scheme_end));
        if (parsed.scheme != "http" && parsed.scheme != "https")
            throw std::invalid_argument("only http:// and https:// URLs can be served: " + std::string(url));
        url.remove_prefix(scheme_end + 3);
        if (url.ends_with('/')) url.remove_suffix(1);
        const auto colon = url.rfind(':');
        if (colon == std::string_view::npos || url.find(']', colon) != std::string_view::npos)
            throw std::invalid_argument("a URL to listen on needs a port: " + std::string(url));
        auto host = url.substr(0, colon);
        if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
        if (host == "*" || host == "+") host = "0.0.0.0";
        parsed.host = std::string(host);
        parsed.port = std::string(url.substr(colon + 1));
        out.push_back(std::move(parsed));
    }
    if (out.empty()) throw std::invalid_argument("no URL to listen on");
    return out;
}

}  // namespace duplex::detail
