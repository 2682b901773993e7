// duplex::app — ASP.NET Core's application host for C++ coroutines: a middleware pipeline (use, map,
// run), use_websockets(), static files, listening on URLs with worker threads, and a graceful shutdown.
//
//   duplex::app app(argc, argv);                        // honours --urls and --threads
//   app.use_websockets({.keep_alive_interval = 2min});
//   app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> { ... });
//   app.use_https({.certificate_chain_file = "server.pem", .private_key_file = "server.key"});   // for https://
//   app.run("http://localhost:5000;https://localhost:5001");
//
// The pieces: app/pipeline.hpp (next, middleware), app/app_options.hpp, app/static_files.hpp, and in
// app/detail/ the listeners (listener.hpp), the HTTP/1.1 connection (http_connection.hpp) and what the
// connections share with the app (app_core.hpp).
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/app_options.hpp>
#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/listen_url.hpp>
#include <duplex/app/detail/listener.hpp>
#include <duplex/app/detail/processor_count.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/https_options.hpp>
#include <duplex/app/pipeline.hpp>
#include <duplex/app/static_files.hpp>
#include <duplex/app/websocket_handlers.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/app/websocket_session.hpp>
#include <duplex/config.hpp>
#include <duplex/pubsub/topic_registry.hpp>
#include <duplex/tls/context.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <concepts>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace duplex {

class app {
public:
    explicit app(app_options options = {}) : core_(std::make_unique<detail::app_core>()) {
        core_->options = std::move(options);
    }
    // Honours --urls URL[;URL…] (or --urls=…) from the command line, ASP.NET's convention, and
    // --threads N (or --threads=N), which sets app_options::worker_threads; throws std::invalid_argument
    // for a --threads that is not a number from 1 to 1024.
    app(int argc, char** argv, app_options options = {}) : app(std::move(options)) {
        if (argc > 0 && core_->options.name == "duplex") core_->options.name = std::filesystem::path(argv[0]).filename().string();
        for (int i = 1; i < argc; ++i) {
            const std::string_view arg = argv[i];
            if (arg == "--urls" && i + 1 < argc) command_line_urls_ = argv[++i];
            else if (arg.starts_with("--urls=")) command_line_urls_ = std::string(arg.substr(7));
            else if (arg == "--threads" && i + 1 < argc) core_->options.worker_threads = parse_thread_count(argv[++i]);
            else if (arg.starts_with("--threads=")) core_->options.worker_threads = parse_thread_count(arg.substr(10));
        }
    }
    app(const app&) = delete;
    app& operator=(const app&) = delete;

    app_options& options() noexcept { return core_->options; }

    // Adds a middleware: it may answer the request, or call next to pass it on.
    app& use(middleware m) {
        core_->pipeline.push_back(std::move(m));
        return *this;
    }

    // ASP.NET's app.Run(handler): a terminal step that answers every request reaching it.
    template <class Handler>
        requires std::invocable<Handler&, http_context&>
    app& run(Handler handler) {
        return use([handler = request_handler(std::move(handler))](http_context& ctx, next) { return handler(ctx); });
    }

    // Routes requests for `path` (exactly, or below it: "/api" matches "/api/x") to `handler`.
    app& map(std::string path, request_handler handler) {
        if (path.size() > 1 && path.back() == '/') path.pop_back();
        return use([path = std::move(path), handler = std::move(handler)](http_context& ctx, next rest) {
            const auto& p = ctx.request.path;
            const bool match = p == path || (p.starts_with(path) && (path == "/" || p[path.size()] == '/'));
            return match ? handler(ctx) : rest(ctx);
        });
    }

    // ASP.NET's UseWebSockets: recognises WebSocket requests from here on and refuses other origins.
    app& use_websockets(websocket_options options = {}) {
        websocket_options_.push_back(std::make_unique<websocket_options>(std::move(options)));
        return use([options = websocket_options_.back().get()](http_context& ctx, next rest) -> awaitable<void> {
            ctx.websockets.enable(*options);
            if (ctx.websockets.is_websocket_request() && !origin_allowed(ctx.request, *options)) {
                ctx.response.status_code = 403;
                co_return;
            }
            co_await rest(ctx);
        });
    }

    // The message-driven API (app/websocket_handlers.hpp): WebSocket requests for exactly `path` become
    // sessions driven by `handlers`, with no coroutine per connection; other requests for it get 400.
    // Place it after use_websockets, whose options (keep-alive, allowed origins, receive buffer) apply,
    // as do app_options::websocket_limits and the graceful shutdown.
    template <class UserData>
    app& map_websocket(std::string path, websocket_handlers<UserData> handlers) {
        const auto buffer = handlers.receive_buffer_size != 0 ? handlers.receive_buffer_size
                            : websocket_options_.empty()      ? websocket_options{}.receive_buffer_size
                                                               : websocket_options_.back()->receive_buffer_size;
        auto route = std::make_shared<const detail::websocket_route<UserData>>(
            detail::websocket_route<UserData>{std::move(handlers), std::move(path), *core_, topics_, buffer});
        return use([route](http_context& ctx, next rest) -> awaitable<void> {
            if (ctx.request.path != route->path) {
                co_await rest(ctx);
            } else if (!ctx.websockets.is_websocket_request()) {
                ctx.response.status_code = 400;
            } else {
                co_await detail::open_session(ctx, route);
            }
        });
    }

    // The app's topics (pubsub/topic_registry.hpp): sessions of map_websocket subscribe to them, a
    // duplex::websocket through a pubsub::subscriber; publish from anywhere.
    pubsub::topic_registry& topics() noexcept { return topics_; }

    // Kestrel's UseHttps: the certificate that every https:// URL is served with. Loads the files now, and
    // throws std::system_error naming the file that cannot be read or the key that does not belong to
    // the certificate; std::invalid_argument without files or context, or with both.
    app& use_https(https_options options) {
        const bool has_files = !options.certificate_chain_file.empty() || !options.private_key_file.empty();
        if (options.context && has_files)
            throw std::invalid_argument("https_options: give either a context or certificate and key files, not both");
        if (!options.context) {
            if (options.certificate_chain_file.empty() || options.private_key_file.empty())
                throw std::invalid_argument("https_options needs certificate_chain_file and private_key_file (or a context)");
            tls::server_options files;
            files.certificate_file = options.certificate_chain_file;
            files.private_key_file = options.private_key_file;
            files.alpn_protocols = alpn_protocols_for(options.protocols);
            options.context = tls::server_context(files);
        }
        if (options.handshake_timeout <= std::chrono::steady_clock::duration::zero())
            throw std::invalid_argument("https_options::handshake_timeout must be positive");
        core_->https_context_given = !has_files;
        core_->https = std::move(options);
        return *this;
    }

    // Serves files under `root` for GET and HEAD (a directory serves its index.html); anything else, or
    // a path that leaves the folder in any way, goes on down the pipeline.
    app& use_static_files(const std::filesystem::path& root) { return use(static_files(root)); }

    // Listens on `urls` (overridden by --urls from the command line) and serves until SIGINT, SIGTERM
    // or stop(); then shuts down gracefully and returns. Throws std::invalid_argument, before listening
    // anywhere, for a malformed URL or an https:// URL without use_https().
    void run(std::string_view urls = "http://localhost:5000") {
        const auto& chosen = command_line_urls_.empty() ? std::string(urls) : command_line_urls_;
        const auto parsed = detail::parse_listen_urls(chosen);
        for (const auto& url : parsed)
            if (url.scheme == "https" && !core_->https)
                throw std::invalid_argument("cannot serve " + url.text +
                                            ": https:// needs a certificate, configure one with app.use_https()");
        // One io_context per worker thread (detail::io_pool). Shared: every accepted WebSocket retains the
        // pool through core_->io, so a handle kept beyond run() (or the app) is still destroyed cleanly;
        // see the end of run().
        const unsigned threads = thread_count();
        const auto pool = std::make_shared<detail::io_pool>(threads);
        auto& io = (*pool)[0];
        core_->io = std::shared_ptr<asio::io_context>(pool, &io);
        // SIGINT and SIGTERM are caught before "listening on" is printed: whoever starts the app on that
        // line may stop it at once, and gets the graceful shutdown.
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([this](std::error_code ec, int) {
            if (!ec) stop();
        });
        std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors;
        acceptors_ = &acceptors;
        pool_ = pool.get();
        set_running(core_->io);
        for (const auto& url : parsed) detail::listen(*pool, url, *core_, acceptors);
        if (acceptors.empty()) {
            set_running(nullptr);
            pool_ = nullptr;
            acceptors_ = nullptr;
            core_->io.reset();
            throw std::runtime_error("no address to listen on: " + chosen);
        }
        detail::report_descriptor_limit(*core_);
        core_->log(log_level::information, std::to_string(threads) + " worker thread" + (threads == 1 ? "" : "s") +
                                                " (an io_context each), at most " +
                                                std::to_string(core_->options.max_connections) + " connections");
        // The other workers' io_contexts have no work until a connection comes: kept running until
        // drain() stops them all.
        std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
        std::vector<std::thread> workers;
        for (std::size_t i = 1; i < pool->size(); ++i) {
            keep_running.push_back(asio::make_work_guard((*pool)[i]));
            workers.emplace_back([&worker = (*pool)[i]] { worker.run(); });
        }
        io.run();
        pool->stop();  // io.run() returns when drain() stopped every io_context; this is for any other exit
        for (auto& w : workers) w.join();
        keep_running.clear();
        set_running(nullptr);
        pool_ = nullptr;
        acceptors_ = nullptr;
        // No thread runs an io_context now. What the shutdown did not end (the shutdown timeout passed,
        // or a handler keeps a socket in a map) ends here: the requests end, so that a handle kept
        // beyond run() fails its operations at once, and the handlers still suspended are destroyed.
        core_->abandon_connections();
        signals.cancel();
        for (std::size_t i = 0; i < pool->size(); ++i) (*pool)[i].shut_down();
        core_->io.reset();
    }

    // Thread-safe: stops accepting, sends close 1001 to every WebSocket, waits up to shutdown_timeout
    // for the handlers to finish, then ends run().
    void stop() {
        // Held until post() has returned: a post wakes a worker, which may see the shutdown through and
        // end run() while this thread is still signalling the io_context it posted to.
        std::shared_ptr<asio::io_context> running;
        {
            std::lock_guard lock(running_mutex_);
            running = running_;
        }
        if (!running) return;
        asio::post(*running, [this, io = running.get()] {
            if (core_->stopping.exchange(true)) return;
            for (auto& a : *acceptors_) {
                std::error_code ignored;
                a->close(ignored);
            }
            core_->shut_down_connections();  // each on its own io_context
            asio::co_spawn(*io, drain(*io, *pool_), asio::detached);
        });
    }

    // The URLs actually listened on (ports resolved), once run() has started.
    std::vector<std::string> listening_urls() const {
        std::lock_guard lock(core_->urls_mutex);
        return core_->listening_urls;
    }

private:
    void set_running(std::shared_ptr<asio::io_context> io) {
        std::lock_guard lock(running_mutex_);
        running_ = std::move(io);
    }

    static unsigned parse_thread_count(std::string_view text) {
        unsigned n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc{} || end != text.data() + text.size() || n == 0 || n > 1024)
            throw std::invalid_argument("--threads needs a number of threads from 1 to 1024, not '" + std::string(text) + "'");
        return n;
    }

    // The CPUs this process may run on (its affinity and cgroup quota, as .NET counts them), unless set.
    unsigned thread_count() const {
        const auto configured = core_->options.worker_threads;
        return configured != 0 ? configured : detail::processor_count();
    }

    static bool origin_allowed(const http::request& request, const websocket_options& options) {
        const auto& allowed = options.allowed_origins;
        if (allowed.empty() || std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return true;
        const auto origin = request.headers.get("Origin");
        if (!origin) return true;  // not a browser: origins protect browsers' users, not servers
        return std::any_of(allowed.begin(), allowed.end(),
                           [&](const std::string& a) { return http::detail::iequals(a, *origin); });
    }

    awaitable<void> drain(asio::io_context& io, detail::io_pool& pool) {
        asio::steady_timer timer(io);
        const auto give_up = std::chrono::steady_clock::now() + core_->options.shutdown_timeout;
        while (core_->active_connections != 0 && std::chrono::steady_clock::now() < give_up) {
            timer.expires_after(std::chrono::milliseconds(20));
            co_await timer.async_wait(detail::use_nothrow_awaitable);
        }
        // Said aloud, because what is cut off here gets no close_notify, close frame or end of response.
        if (const std::size_t left = core_->active_connections; left != 0)
            core_->log(log_level::warning, "shutdown_timeout passed with " + std::to_string(left) +
                                               (left == 1 ? " connection" : " connections") +
                                               " still open; closing them");
        pool.stop();
    }

    std::unique_ptr<detail::app_core> core_;
    std::vector<std::unique_ptr<websocket_options>> websocket_options_;
    pubsub::topic_registry topics_;
    std::string command_line_urls_;
    // The first io_context (sharing the ownership of the whole io_pool) while run() runs, for stop()
    // from any thread; the acceptors and drain() run there.
    std::mutex running_mutex_;
    std::shared_ptr<asio::io_context> running_;
    detail::io_pool* pool_ = nullptr;  // used on the first io_context only
    std::vector<std::shared_ptr<asio::ip::tcp::acceptor>>* acceptors_ = nullptr;
};

}  // namespace duplex
