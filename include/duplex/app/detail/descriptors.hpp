// Running out of file descriptors: the process's limit on them (RLIMIT_NOFILE), raised to its hard
// limit at start-up, and the reserve descriptor the accept loop gives up when accept() fails with
// EMFILE/ENFILE, so that the connection waiting in the backlog can be answered and closed instead of
// leaving the acceptor ready forever (libev's and libuv's technique).
#pragma once

#include <duplex/app/detail/app_core.hpp>
#include <duplex/config.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#define DUPLEX_HAS_POSIX_DESCRIPTORS 1
#endif

namespace duplex::detail {

struct descriptor_limit {
    std::size_t effective = 0;  // what the process may open now (0: unknown)
    std::size_t before = 0;     // the soft limit we found
};

// Raises the soft RLIMIT_NOFILE to the hard limit, as Go's runtime and nginx's worker_rlimit_nofile do:
// Debian's default soft limit of 1,024 would run out long before max_connections. Returns the limit
// in effect afterwards; empty where the platform has no such limit.
inline std::optional<descriptor_limit> raise_descriptor_limit() noexcept {
#if defined(DUPLEX_HAS_POSIX_DESCRIPTORS)
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
    descriptor_limit result;
    result.before = static_cast<std::size_t>(limit.rlim_cur);
    if (limit.rlim_cur != limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
#if defined(__APPLE__)
        raised.rlim_cur = std::min<rlim_t>(raised.rlim_cur, OPEN_MAX);  // macOS refuses more than OPEN_MAX
#endif
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    result.effective = limit.rlim_cur == RLIM_INFINITY ? std::size_t(-1) : static_cast<std::size_t>(limit.rlim_cur);
    return result;
#else
    return std::nullopt;
#endif
}

// EMFILE (the process's limit) or ENFILE (the system's). Asio's system category has no equivalence
// with std::errc, so the values are compared.
inline bool is_out_of_descriptors(const std::error_code& ec) noexcept {
    if (ec == asio::error::no_descriptors) return true;
#if defined(ENFILE)
    return ec.category() == asio::error::get_system_category() && ec.value() == ENFILE;
#else
    return false;
#endif
}

// One descriptor kept open for the moment the process runs out: closing it makes room to accept (and
// answer, and close) one waiting connection, and it is taken back at once. One per accept loop, so
// that no lock is needed; a reserve that could not be taken back (another thread got there first)
// is retried at the next shortage.
class descriptor_reserve {
public:
    descriptor_reserve() noexcept { take(); }
    ~descriptor_reserve() { give_up(); }
    descriptor_reserve(const descriptor_reserve&) = delete;
    descriptor_reserve& operator=(const descriptor_reserve&) = delete;

    enum class shed { answered, nothing_waiting, no_descriptor };

    // Accepts one connection waiting on `acceptor` in the reserve's place, answers it with `answer` (if
    // any; it must fit a new socket's send buffer) and closes it.
    shed shed_one(asio::ip::tcp::acceptor& acceptor, std::string_view answer) noexcept {
        if (!held()) take();
        if (!held()) return shed::no_descriptor;
        give_up();
        std::error_code ec;
        acceptor.non_blocking(true, ec);
        asio::ip::tcp::socket refused(acceptor.get_executor());
        if (!ec) acceptor.accept(refused, ec);
        std::error_code ignored;
        acceptor.non_blocking(false, ignored);
        if (!ec) answer_and_close(refused, answer);
        take();
        if (!ec) return shed::answered;
        const bool nothing_waiting = ec == asio::error::would_block || ec == asio::error::try_again;
        return nothing_waiting ? shed::nothing_waiting : shed::no_descriptor;
    }

private:
    bool held() const noexcept { return fd_ >= 0; }

    void take() noexcept {
#if defined(DUPLEX_HAS_POSIX_DESCRIPTORS)
        if (!held()) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
#endif
    }

    void give_up() noexcept {
#if defined(DUPLEX_HAS_POSIX_DESCRIPTORS)
        if (held()) ::close(fd_);
#endif
        fd_ = -1;
    }

    // Without waiting: the answer goes into the new socket's empty send buffer, and whatever the client
    // sent already is read and dropped so that the close is a FIN after the answer, not a reset that
    // could destroy it.
    static void answer_and_close(asio::ip::tcp::socket& socket, std::string_view answer) noexcept {
        std::error_code ec;
        socket.non_blocking(true, ec);
        if (!answer.empty() && !ec) socket.send(asio::buffer(answer), 0, ec);
        socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        std::array<char, 1024> discard;
        for (int i = 0; i < 16 && !ec; ++i) socket.receive(asio::buffer(discard), 0, ec);
        socket.close(ec);
    }

    int fd_ = -1;
};

// What an accept loop does while the process is out of descriptors: every failed accept sheds the
// connection that caused it through the reserve; when even that cannot be done it pauses, 10 ms at
// first and up to a second, instead of retrying at once. Each shortage is reported once when it
// begins and once when it ends.
class descriptor_shortage {
public:
    descriptor_shortage(const app_core& core, std::string url) : core_(core), url_(std::move(url)) {}

    awaitable<void> relieve(asio::ip::tcp::acceptor& acceptor, std::string_view answer) {
        if (!in_shortage_) {
            in_shortage_ = true;
            refused_ = 0;
            core_.log(log_level::warning, "out of file descriptors, accepting on " + url_ + " failed: " +
                                              (answer.empty() ? "closing" : "answering 503 to") +
                                              " new connections there until some close");
        }
        switch (reserve_.shed_one(acceptor, answer)) {
        case descriptor_reserve::shed::answered:
            ++refused_;
            pause_ = first_pause;
            break;
        case descriptor_reserve::shed::nothing_waiting:
            // Linux fails accept() with EMFILE before it looks at the backlog, and Asio tries an accept
            // before it waits: wait for a connection to come first, or the loop would spin.
            pause_ = first_pause;
            co_await acceptor.async_wait(asio::ip::tcp::acceptor::wait_read, use_nothrow_awaitable);
            break;
        case descriptor_reserve::shed::no_descriptor: {
            asio::steady_timer timer(acceptor.get_executor(), pause_);
            co_await timer.async_wait(use_nothrow_awaitable);
            pause_ = std::min(2 * pause_, longest_pause);
            break;
        }
        }
    }

    // A connection was accepted: the shortage, if there was one, is over.
    void end() {
        if (!in_shortage_) return;
        in_shortage_ = false;
        core_.log(log_level::information, "file descriptors available again, accepting on " + url_ + " (" +
                                              std::to_string(refused_) +
                                              (refused_ == 1 ? " connection" : " connections") + " refused meanwhile)");
    }

private:
    static constexpr std::chrono::milliseconds first_pause{10}, longest_pause{1000};

    const app_core& core_;
    std::string url_;
    descriptor_reserve reserve_;
    bool in_shortage_ = false;
    std::size_t refused_ = 0;
    std::chrono::milliseconds pause_ = first_pause;
};

}  // namespace duplex::detail
