// raw-echo — the physical limit the WebSocket echoes are measured against: a TCP echo of length-prefixed
// records (4-byte big-endian length, then the payload), single-threaded, epoll edge-triggered.
//
//   raw-echo [--urls http://HOST:PORT]     (prints "raw-echo listening on http://HOST:PORT"; port 0 picks one)
//
// It does the least a message protocol can: one read takes everything the socket has into a buffer
// shared by all connections, and every complete record in it goes back in one write straight from that
// buffer. Only a partial record (or what the peer has not taken yet) is kept per connection, so an idle
// connection holds a file descriptor and a few dozen bytes. Records are echoed only once complete, like
// a message-based echo has to.
#include "listen.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t shared_buffer_size = 256 * 1024;

// Bytes kept between reads, in a buffer that is not zero-filled and keeps its capacity.
struct byte_store {
    std::unique_ptr<char[]> data;
    std::size_t size = 0;
    std::size_t capacity = 0;

    void reserve(std::size_t n) {
        if (n <= capacity) return;
        auto bigger = std::make_unique_for_overwrite<char[]>(n);
        if (size > 0) std::memcpy(bigger.get(), data.get(), size);
        data = std::move(bigger);
        capacity = n;
    }
    void assign(const char* p, std::size_t n) {
        reserve(std::max<std::size_t>(n, 256));
        std::memcpy(data.get(), p, n);
        size = n;
    }
};

struct connection {
    int fd = -1;
    byte_store in;           // a partial record carried over to the next read
    byte_store out;          // echoed bytes the socket did not take yet
    std::size_t out_sent = 0;
    bool peer_done = false;  // the peer shut down its side: close once `out` has left
};

volatile sig_atomic_t stop_requested = 0;

// Length of the complete records at the start of [data, data + size).
std::size_t complete_records(const char* data, std::size_t size) {
    std::size_t at = 0;
    while (size - at >= 4) {
        const auto* p = reinterpret_cast<const unsigned char*>(data + at);
        const std::size_t length = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
        if (size - at - 4 < length) break;
        at += 4 + length;
    }
    return at;
}

// Length of the record that starts `in` with its prefix, or 4 while the prefix itself is incomplete.
std::size_t record_total(const byte_store& in) {
    if (in.size < 4) return 4;
    const auto* p = reinterpret_cast<const unsigned char*>(in.data.get());
    return 4 + ((std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3]);
}

class server {
public:
    server(int listener) : listener_(listener), buffer_(std::make_unique<char[]>(shared_buffer_size)) {
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        epoll_ctl(epfd_, EPOLL_CTL_ADD, listener_, &ev);
    }

    void run() {
        std::vector<epoll_event> events(1024);
        while (!stop_requested) {
            const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 200);
            for (int i = 0; i < n; ++i) {
                const auto& ev = events[static_cast<std::size_t>(i)];
                if (ev.data.ptr == nullptr) {
                    accept_all();
                    continue;
                }
                auto* c = static_cast<connection*>(ev.data.ptr);
                if (ev.events & EPOLLOUT) {
                    if (!flush(*c)) continue;
                }
                if (ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
                    on_readable(*c, (ev.events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0);
            }
        }
    }

private:
    void accept_all() {
        for (;;) {
            const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;  // EAGAIN, or e.g. EMFILE: keep serving the connections we have
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto* c = new connection;
            c->fd = fd;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
            ev.data.ptr = c;
            epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
        }
    }

    // `ending`: the peer's FIN (or an error) is already signalled, so read on to it past a short read.
    void on_readable(connection& c, bool ending = false) {
        // While the peer is not taking our echoes, stop reading: that is the backpressure.
        while (c.out.size == 0) {
            // Reads go into the shared buffer, after a carried-over partial record moved to its front;
            // only a record larger than the shared buffer is read into its own, up to the record's end.
            char* base = buffer_.get();
            std::size_t have = c.in.size;
            std::size_t room = shared_buffer_size - have;
            const std::size_t total = record_total(c.in);
            if (total > shared_buffer_size) {
                c.in.reserve(total);
                base = c.in.data.get();
                room = total - have;
            } else if (have > 0) {
                std::memcpy(base, c.in.data.get(), have);
            }
            const ssize_t n = ::recv(c.fd, base + have, room, 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                if (n == 0) c.peer_done = true;
                if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                    close(c);
                } else if (base == buffer_.get() && have > 0) {
                    c.in.size = have;  // still in c.in: nothing was consumed
                }
                return;
            }
            const std::size_t got = have + static_cast<std::size_t>(n);
            const std::size_t whole = complete_records(base, got);
            if (whole > 0 && !write_or_keep(c, base, whole)) return;
            if (base == buffer_.get()) {
                if (got > whole) c.in.assign(base + whole, got - whole);
                else c.in.size = 0;
            } else {
                c.in.size = got > whole ? got : 0;  // read never passes the record's end
            }
            if (static_cast<std::size_t>(n) < room && !ending) return;  // a short read drained the socket
        }
    }

    // Writes the echo; what the socket does not take waits in `out`. Returns false when c was closed.
    bool write_or_keep(connection& c, const char* data, std::size_t size) {
        std::size_t sent = 0;
        while (sent < size) {
            const ssize_t n = ::send(c.fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                close(c);
                return false;
            }
            sent += static_cast<std::size_t>(n);
        }
        if (sent < size) {
            c.out.assign(data + sent, size - sent);
            c.out_sent = 0;
        }
        return true;
    }

    // Sends what is kept in `out`; returns false when c was closed.
    bool flush(connection& c) {
        while (c.out_sent < c.out.size) {
            const ssize_t n = ::send(c.fd, c.out.data.get() + c.out_sent, c.out.size - c.out_sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
                close(c);
                return false;
            }
            c.out_sent += static_cast<std::size_t>(n);
        }
        if (c.out.size == 0) return true;
        c.out.size = 0;
        c.out_sent = 0;
        if (c.peer_done) {
            close(c);
            return false;
        }
        on_readable(c);  // reading stopped while the echo was pending; the edge may have passed
        return false;
    }

    void close(connection& c) {
        ::close(c.fd);
        delete &c;
    }

    int listener_;
    int epfd_ = -1;
    std::unique_ptr<char[]> buffer_;
};

}  // namespace

int main(int argc, char** argv) {
    std::string url = "http://127.0.0.1:5001";
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--urls" && i + 1 < argc) url = argv[++i];
        else if (arg.starts_with("--urls=")) url = std::string(arg.substr(7));
        else {
            std::fprintf(stderr, "usage: raw-echo [--urls http://HOST:PORT]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction on_stop{};
    on_stop.sa_handler = [](int) { stop_requested = 1; };
    sigaction(SIGINT, &on_stop, nullptr);
    sigaction(SIGTERM, &on_stop, nullptr);
    const int listener = bench::listen_on(url, "raw-echo");
    if (listener < 0) {
        std::fprintf(stderr, "raw-echo: cannot listen on %s\n", url.c_str());
        return 1;
    }
    server(listener).run();
}
