// What the connections of a duplex::app share with it: the pipeline, the options, the https
// configuration, the log, the io_context, and the registry of live connections that a graceful
// shutdown walks.
#pragma once

#include <duplex/app/app_options.hpp>
#include <duplex/app/https_options.hpp>
#include <duplex/app/logging.hpp>
#include <duplex/app/pipeline.hpp>
#include <duplex/config.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::detail {

// The app's io_context, with the shutdown that its destructor would do available earlier: run() ends
// every handler still pending while the io_context itself lives on for the handles that outlive run().
class host_io_context : public asio::io_context {
public:
    using asio::io_context::io_context;
    void shut_down() { shutdown(); }
};

// The app's event loops: one io_context per worker thread, each run by its thread alone. A connection
// lives on one of them from its accept to its end (handed round-robin by the accept loop), so nothing of
// it ever runs on two threads and it needs no strand; a caller on another thread is carried to its
// io_context (websocket/detail/operation.hpp).
class io_pool {
public:
    explicit io_pool(unsigned threads) {
        for (unsigned i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<host_io_context>(1));
    }
    std::size_t size() const noexcept { return contexts_.size(); }
    host_io_context& operator[](std::size_t i) noexcept { return *contexts_[i]; }
    // The io_context of the next connection (called by the accept loops, on the first io_context only).
    host_io_context& next() noexcept { return *contexts_[next_++ % contexts_.size()]; }
    void stop() {
        for (auto& c : contexts_) c->stop();
    }

private:
    std::vector<std::unique_ptr<host_io_context>> contexts_;
    std::size_t next_ = 0;
};

class connection_base {
public:
    // Thread-safe: asks the connection to end (WebSockets get close 1001, idle HTTP connections close).
    virtual void begin_shutdown() = 0;
    // The app is gone (run() is returning and no thread runs the io_context any more): the request ends
    // now, on the calling thread, so that a WebSocket handle kept beyond run() fails its operations at
    // once instead of waiting on an io_context nobody runs.
    virtual void abandon() noexcept = 0;

protected:
    ~connection_base() = default;
};

// What the connections share with the app: the pipeline, options, and the registry used for shutdown.
struct app_core {
    std::vector<middleware> pipeline;
    app_options options;
    // While run() runs: the first io_context, sharing the ownership of the whole io_pool. Every accepted
    // WebSocket retains it (ws::stream::retain), and with it its own io_context, so a handle kept beyond
    // run() and the app is still destroyed cleanly.
    std::shared_ptr<asio::io_context> io;
    std::optional<https_options> https;  // set by use_https, with its context loaded
    bool https_context_given = false;    // use_https got a ready context: its ALPN list is the user's
    std::atomic<std::size_t> active_connections{0};
    std::atomic<bool> stopping{false};
    std::mutex registry_mutex;
    std::list<std::weak_ptr<connection_base>> registry;
    // The URLs actually listened on (ports resolved), for app::listening_urls().
    std::mutex urls_mutex;
    std::vector<std::string> listening_urls;

    std::list<std::weak_ptr<connection_base>>::iterator enroll(std::weak_ptr<connection_base> c) {
        std::lock_guard lock(registry_mutex);
        return registry.insert(registry.end(), std::move(c));
    }
    void withdraw(std::list<std::weak_ptr<connection_base>>::iterator at) {
        std::lock_guard lock(registry_mutex);
        registry.erase(at);
    }
    void shut_down_connections() {
        for (auto& c : live_connections()) c->begin_shutdown();
    }
    void abandon_connections() {
        for (auto& c : live_connections()) c->abandon();
    }
    std::vector<std::shared_ptr<connection_base>> live_connections() {
        std::vector<std::shared_ptr<connection_base>> live;
        std::lock_guard lock(registry_mutex);
        for (auto& weak : registry)
            if (auto c = weak.lock()) live.push_back(std::move(c));
        return live;
    }

    bool logs(log_level level) const noexcept {
        return level >= options.logging.minimum_level && options.logging.minimum_level != log_level::none;
    }
    void log(log_level level, std::string_view message) const {
        if (!logs(level)) return;
        if (options.logging.sink) options.logging.sink(level, message);
        else write_log_line(options.name, level, message);
    }
};

}  // namespace duplex::detail
