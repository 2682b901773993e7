// What the connections of a duplex::app share with it: the pipeline, the options, the https
// configuration, and the registry of live connections that a graceful shutdown walks.
#pragma once

#include <duplex/app/app_options.hpp>
#include <duplex/app/https_options.hpp>
#include <duplex/app/pipeline.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace duplex::detail {

class connection_base {
public:
    // Thread-safe: asks the connection to end (WebSockets get close 1001, idle HTTP connections close).
    virtual void begin_shutdown() = 0;

protected:
    ~connection_base() = default;
};

// What the connections share with the app: the pipeline, options, and the registry used for shutdown.
struct app_core {
    std::vector<middleware> pipeline;
    app_options options;
    std::optional<https_options> https;  // set by use_https, with its context loaded
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
        std::vector<std::shared_ptr<connection_base>> live;
        {
            std::lock_guard lock(registry_mutex);
            for (auto& weak : registry)
                if (auto c = weak.lock()) live.push_back(std::move(c));
        }
        for (auto& c : live) c->begin_shutdown();
    }
};

}  // namespace duplex::detail
