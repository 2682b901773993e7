// The raw servers' listening socket (raw-echo, duplex-fanout-server --mode raw): --urls as the app takes
// it, and the "NAME listening on URL" line benchmarks/run waits for.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace bench {

// A non-blocking listener on http://HOST:PORT (port 0 picks one), or -1.
inline int listen_on(std::string_view url, const char* name) {
    if (url.starts_with("http://")) url.remove_prefix(7);
    if (url.ends_with('/')) url.remove_suffix(1);
    const auto colon = url.rfind(':');
    if (colon == std::string_view::npos) return -1;
    std::string host(url.substr(0, colon));
    if (host == "localhost") host = "127.0.0.1";
    const int port = std::atoi(std::string(url.substr(colon + 1)).c_str());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return -1;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, SOMAXCONN) != 0) {
        ::close(fd);
        return -1;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("%s listening on http://%s:%u\n", name, host.c_str(), ntohs(addr.sin_port));
    std::fflush(stdout);
    return fd;
}

}  // namespace bench
