// duplex-fanout-server — the server of the single-node fan-out benchmark (benchmarks/run --fanout): one
// publisher to many subscribers, done three ways, each in a process of its own so that its CPU time is
// its own and nothing else's.
//
//   duplex-fanout-server --mode publish|send-loop|raw [--urls http://127.0.0.1:0] [--size BYTES]
//
// Subscribers connect to /sub (raw: any TCP connection, no request). A subscriber that sends the text
// message "K" asks for K binary messages of --size bytes (64 by default) to every subscriber, itself
// included; duplex-loadgen --mode fanout does so on one of its connections whenever the slowest has
// fewer than its window of messages on their way. Each mode runs one thread, and every subscriber gets
// the same bytes: one unmasked frame, a 2-byte header (4 from 126 bytes) and the payload.
//
//   publish    the message-driven API (app.map_websocket): each session subscribes to one topic in
//              on_open, and on_message publishes K times with app.topics().publish (pub/sub: the frame
//              is encoded once per message and every subscriber's queue takes it).
//   send-loop  the ASP.NET-shaped API: each handler accepts, joins a room (a list of duplex::websocket)
//              and loops on receive; a request makes its handler co_await send to every member in turn,
//              K times, over a snapshot of the room (README's broadcast, "Threads and handles").
//   raw        no WebSocket library, the floor: epoll, edge-triggered; the frame is encoded once at
//              start-up, and each subscriber gets all the frames asked for by one read in one send.
#include <duplex/duplex.hpp>

#include "../loadgen/wire.hpp"
#include "../servers/listen.hpp"

#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view topic = "fanout";

// The K of a request "K"; 0 for anything else.
std::size_t requested_count(std::string_view text) {
    std::size_t k = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), k);
    return ec == std::errc{} && end == text.data() + text.size() ? k : 0;
}

duplex::app_options one_thread() {
    duplex::app_options o;
    o.name = "duplex-fanout-server";
    o.worker_threads = 1;  // as the raw server: one thread, so the three compare one core's work
    o.logging.minimum_level = duplex::log_level::warning;
    return o;
}

// ---------------------------------------------------------------- publish

void run_publish(const std::string& urls, const std::string& payload) {
    duplex::app app(one_thread());
    app.use_websockets();
    duplex::websocket_handlers<> subscribers;
    subscribers.on_open = [](duplex::websocket_session<>& socket, duplex::http_context&) { socket.subscribe(topic); };
    subscribers.on_message = [&app, &payload](duplex::websocket_session<>&, std::string_view text, duplex::message_type) {
        for (auto k = requested_count(text); k > 0; --k)
            app.topics().publish(topic, asio::buffer(payload), duplex::message_type::binary);
    };
    app.map_websocket("/sub", subscribers);
    app.run(urls);
}

// ---------------------------------------------------------------- send-loop

// The room of README's broadcast: members join and leave from their handlers, and a sender goes through a
// copy of the handles taken under the lock, so that members may come and go meanwhile.
class room {
public:
    using membership = std::list<duplex::websocket>::iterator;

    membership join(const duplex::websocket& ws) {
        std::lock_guard lock(mutex_);
        return members_.insert(members_.end(), ws);
    }
    void leave(membership m) {
        std::lock_guard lock(mutex_);
        members_.erase(m);
    }
    std::vector<duplex::websocket> snapshot() {
        std::lock_guard lock(mutex_);
        return {members_.begin(), members_.end()};
    }

private:
    std::mutex mutex_;
    std::list<duplex::websocket> members_;
};

void run_send_loop(const std::string& urls, const std::string& payload) {
    duplex::app app(one_thread());
    room members;
    app.use_websockets();
    app.use([&members, &payload](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        if (ctx.request.path != "/sub" || !ctx.websockets.is_websocket_request()) {
            co_await next(ctx);
            co_return;
        }
        auto ws = co_await ctx.websockets.accept_websocket();
        const auto place = members.join(ws);
        std::optional<duplex::close_status> peer_closed;
        try {
            std::array<char, 32> request;
            for (;;) {
                const auto r = co_await ws.receive(asio::buffer(request));
                if (r.close_status) {
                    peer_closed = r.close_status;
                    break;
                }
                for (auto k = requested_count({request.data(), r.count}); k > 0; --k) {
                    for (auto& member : members.snapshot()) {
                        try {
                            co_await member.send(asio::buffer(payload), duplex::message_type::binary);
                        } catch (const duplex::websocket_error&) {  // that member is gone or too slow
                        }
                    }
                }
            }
        } catch (const duplex::websocket_error&) {
        }
        members.leave(place);
        if (peer_closed) co_await ws.close(*peer_closed);
    });
    app.run(urls);
}

// ---------------------------------------------------------------- raw

volatile sig_atomic_t stop_requested = 0;

class raw_fanout {
public:
    raw_fanout(int listener, const std::string& frame)
        : listener_(listener),
          train_(frame, bench::train_copies(frame.size(), 64)),  // up to 64 frames a send (4 MiB at most)
          epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = listener_;
        epoll_ctl(epfd_, EPOLL_CTL_ADD, listener_, &ev);
    }

    void run() {
        std::array<epoll_event, 1024> events;
        while (!stop_requested) {
            const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 200);
            for (int i = 0; i < n; ++i) {
                const auto& ev = events[static_cast<std::size_t>(i)];
                const int fd = ev.data.fd;
                if (fd == listener_) {
                    accept_all();
                    continue;
                }
                if (!subscribers_[static_cast<std::size_t>(fd)].open) continue;
                if (ev.events & EPOLLOUT) flush(fd);
                if (ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) on_readable(fd);
            }
            forget_closed();
        }
    }

private:
    // A subscriber is its descriptor's entry: frames asked for that the socket has not taken yet (bytes
    // of the train, from `offset` into a frame), and a request that arrived in part.
    struct subscriber {
        bool open = false;
        std::uint64_t pending = 0;
        std::size_t offset = 0;
        std::string partial;
    };

    void accept_all() {
        forget_closed();  // before a descriptor is used again
        for (;;) {
            const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (subscribers_.size() <= static_cast<std::size_t>(fd)) subscribers_.resize(static_cast<std::size_t>(fd) + 1);
            auto& s = subscribers_[static_cast<std::size_t>(fd)];
            s = subscriber{};
            s.open = true;
            open_.push_back(fd);
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
            ev.data.fd = fd;
            epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
        }
    }

    // Reads the requests (masked client frames) and sends what they ask for to every subscriber.
    void on_readable(int fd) {
        auto& s = subscribers_[static_cast<std::size_t>(fd)];
        for (;;) {
            const ssize_t n = ::recv(fd, buffer_.data(), buffer_.size(), 0);
            if (n > 0) {
                s.partial.append(buffer_.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            drop(fd);  // end of stream, or an error
            return;
        }
        std::size_t asked = 0;
        std::size_t at = 0;
        while (s.partial.size() - at >= 6) {  // a client frame: 2 bytes, the mask, a short payload
            const auto* h = reinterpret_cast<const unsigned char*>(s.partial.data() + at);
            const std::size_t length = h[1] & 0x7F;
            if (length >= 126) {  // requests are a few digits: this is no subscriber of ours
                drop(fd);
                return;
            }
            if (s.partial.size() - at < 6 + length) break;
            std::array<char, 125> text;
            for (std::size_t i = 0; i < length; ++i) text[i] = static_cast<char>(h[6 + i] ^ h[2 + i % 4]);
            if ((h[0] & 0x0F) == 0x1) asked += requested_count({text.data(), length});
            at += 6 + length;
        }
        s.partial.erase(0, at);
        if (asked > 0) publish(asked);
    }

    void publish(std::size_t frames) {
        for (const int fd : open_) {
            subscribers_[static_cast<std::size_t>(fd)].pending += frames * train_.frame_size;
            flush(fd);
        }
    }

    void flush(int fd) {
        auto& s = subscribers_[static_cast<std::size_t>(fd)];
        if (bench::send_train(fd, train_, s.pending, s.offset) == bench::train_sent::failed) drop(fd);
    }

    void drop(int fd) {
        ::close(fd);
        subscribers_[static_cast<std::size_t>(fd)].open = false;
        closed_ = true;
    }
    // Outside the loops over open_.
    void forget_closed() {
        if (!std::exchange(closed_, false)) return;
        std::erase_if(open_, [this](int fd) { return !subscribers_[static_cast<std::size_t>(fd)].open; });
    }

    int listener_;
    bench::frame_train train_;
    int epfd_;
    std::vector<subscriber> subscribers_;  // by descriptor
    std::vector<int> open_;                // the open ones, in the order they came
    bool closed_ = false;
    std::array<char, 64 * 1024> buffer_;
};

int run_raw(const std::string& urls, const std::string& payload) {
    signal(SIGPIPE, SIG_IGN);
    struct sigaction on_stop{};
    on_stop.sa_handler = [](int) { stop_requested = 1; };
    sigaction(SIGINT, &on_stop, nullptr);
    sigaction(SIGTERM, &on_stop, nullptr);
    // The app raises its descriptor limit to the hard limit at start-up; so does the raw server.
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    const int listener = bench::listen_on(urls, "duplex-fanout-server");
    if (listener < 0) {
        std::fprintf(stderr, "duplex-fanout-server: cannot listen on %s\n", urls.c_str());
        return 1;
    }
    raw_fanout(listener, bench::make_ws_frame(0x2, false, payload, false)).run();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string_view mode;
    std::string urls = "http://127.0.0.1:0";
    std::size_t size = 64;
    bool understood = argc % 2 == 1;  // options and their values
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view name = argv[i];
        if (name == "--mode") mode = argv[i + 1];
        else if (name == "--urls") urls = argv[i + 1];
        else if (name == "--size") size = requested_count(argv[i + 1]);
        else understood = false;
    }
    if (!understood || (mode != "publish" && mode != "send-loop" && mode != "raw") || size == 0) {
        std::fprintf(stderr, "usage: duplex-fanout-server --mode publish|send-loop|raw [--urls http://HOST:PORT] [--size BYTES]\n");
        return 2;
    }
    const auto payload = bench::make_payload(size, false);
    try {
        if (mode == "raw") return run_raw(urls, payload);
        if (mode == "publish") run_publish(urls, payload);
        else run_send_loop(urls, payload);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "duplex-fanout-server: %s\n", e.what());
        return 1;
    }
}
