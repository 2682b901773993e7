#include <duplex/task_completion_source.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// An io_context on a thread of its own, so an awaiter can tell where it resumed.
struct worker {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    std::thread thread{[this] { io.run(); }};
    ~worker() {
        work.reset();
        thread.join();
    }
};

}  // namespace

TEST_CASE("a result set from another thread wakes every awaiter on its own executor") {
    duplex::task_completion_source<std::string> tcs;
    constexpr int awaiters = 4;
    std::vector<std::unique_ptr<worker>> workers;
    std::atomic<int> resumed_on_own_thread{0}, got_value{0};
    for (int i = 0; i < awaiters; ++i) {
        workers.push_back(std::make_unique<worker>());
        auto& w = *workers.back();
        asio::co_spawn(w.io, [&, tcs, &w = w]() -> duplex::awaitable<void> {
            const auto value = co_await tcs.task();
            if (std::this_thread::get_id() == w.thread.get_id()) ++resumed_on_own_thread;
            if (value == "done") ++got_value;
        }, asio::detached);
    }
    std::this_thread::sleep_for(50ms);  // let every awaiter reach its co_await (not required for correctness)
    std::thread completer([&] { CHECK(tcs.try_set_result("done")); });
    completer.join();
    CHECK_FALSE(tcs.try_set_result("again"));
    CHECK_FALSE(tcs.try_set_canceled());
    for (int i = 0; i < 200 && got_value < awaiters; ++i) std::this_thread::sleep_for(10ms);
    workers.clear();
    CHECK(got_value == awaiters);
    CHECK(resumed_on_own_thread == awaiters);
}

TEST_CASE("awaiting a completed task returns at once, and the source may be gone") {
    asio::io_context io;
    int value = 0;
    {
        duplex::task_completion_source<int> tcs;
        tcs.try_set_result(42);
        asio::co_spawn(io, [task = tcs.task()]() mutable -> duplex::awaitable<void> { co_return; }, asio::detached);
        asio::co_spawn(io, [&value, tcs]() -> duplex::awaitable<void> { value = co_await tcs.task(); }, asio::detached);
    }
    io.run();
    CHECK(value == 42);
}

TEST_CASE("exceptions and cancellation reach every awaiter; void tasks") {
    asio::io_context io;
    duplex::task_completion_source<> done, failed, canceled;
    int completed = 0, errors = 0, cancellations = 0;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        co_await done.task();
        ++completed;
        try {
            co_await failed.task();
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "broken") ++errors;
        }
        try {
            co_await canceled.task();
        } catch (const duplex::task_canceled&) {
            ++cancellations;
        }
    }, asio::detached);
    asio::post(io, [&] {
        CHECK(done.try_set_result());
        CHECK(failed.try_set_exception(std::make_exception_ptr(std::runtime_error("broken"))));
        CHECK(canceled.try_set_canceled());
        CHECK(canceled.is_completed());
    });
    io.run();
    CHECK(completed == 1);
    CHECK(errors == 1);
    CHECK(cancellations == 1);
}

TEST_CASE("an awaiter of a task never completed is destroyed with its io_context, even one holding the task itself") {
    struct counted {
        int& destroyed;
        ~counted() { ++destroyed; }
    };
    int destroyed = 0;
    bool resumed = false;
    duplex::task_completion_source<> outside;
    {
        asio::io_context io;
        // One coroutine awaits a task held elsewhere; one awaits a task only it holds (a cycle through the
        // task's state that nothing else could ever break).
        asio::co_spawn(io, [&destroyed, &resumed, outside]() -> duplex::awaitable<void> {
            counted guard{destroyed};
            co_await outside.task();
            resumed = true;
        }, asio::detached);
        asio::co_spawn(io, [&destroyed, &resumed]() -> duplex::awaitable<void> {
            counted guard{destroyed};
            duplex::task_completion_source<> mine;
            co_await mine.task();
            resumed = true;
        }, asio::detached);
        io.run_for(50ms);
        CHECK(destroyed == 0);
    }
    CHECK(destroyed == 2);
    CHECK_FALSE(resumed);
    CHECK(outside.try_set_result());  // nobody is left waiting: completing it resumes no one
    CHECK_FALSE(resumed);
}
