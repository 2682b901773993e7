// Runs a duplex::app on a thread of its own for an in-process test: start() returns once it listens
// (on 127.0.0.1 with a free port), stop() shuts it down gracefully and waits for run() to return.
#pragma once

#include <duplex/duplex.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <string>
#include <thread>

namespace test {

class app_runner {
public:
    explicit app_runner(duplex::app& app) : app_(app) {}
    ~app_runner() { stop(); }
    app_runner(const app_runner&) = delete;
    app_runner& operator=(const app_runner&) = delete;

    // The base URL, e.g. "http://127.0.0.1:40123".
    std::string start() {
        thread_ = std::thread([this] {
            try {
                app_.run("http://127.0.0.1:0");
            } catch (...) {
                failure_ = std::current_exception();
            }
        });
        for (int i = 0; i < 1000 && app_.listening_urls().empty() && !failure_; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (failure_) std::rethrow_exception(failure_);
        REQUIRE_MESSAGE(!app_.listening_urls().empty(), "the app did not start listening within 10 s");
        return app_.listening_urls().front();
    }

    unsigned short port() const {
        const auto url = app_.listening_urls().front();
        return static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
    }

    void stop() {
        if (!thread_.joinable()) return;
        app_.stop();
        thread_.join();
    }

private:
    duplex::app& app_;
    std::thread thread_;
    std::exception_ptr failure_;
};

}  // namespace test
