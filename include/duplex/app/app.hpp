// duplex::app — ASP.NET Core's application host for C++ coroutines: a middleware pipeline (use, map,
// run), use_websockets(), static files, listening on URLs with worker threads, and a graceful shutdown.
//
//   duplex::app app(argc, argv);                        // honours --urls and --threads
//   app.use_websockets({.keep_alive_interval = 2min});
//   app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> { ... });
//   app.use_https({.certificate_chain_file = "server.pem", .private_key_file = "server.key"});   // for https://
//   app.run("http://localhost:5000;https://localhost:5001");
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/https_options.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/config.hpp>
#include <duplex/http/parser.hpp>
#include <duplex/http/response.hpp>
#include <duplex/http/static_files.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/tls/stream.hpp>
#include <duplex/websocket/stream.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <concepts>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace duplex {

class next;
using middleware = std::function<awaitable<void>(http_context&, next)>;
using request_handler = std::function<awaitable<void>(http_context&)>;

// The rest of the pipeline after the current middleware (ASP.NET's RequestDelegate `next`).
class next {
public:
    awaitable<void> operator()() const { return (*this)(*context_); }
    awaitable<void> operator()(http_context& ctx) const {
        if (index_ < pipeline_->size()) return (*pipeline_)[index_](ctx, next(*pipeline_, index_ + 1, ctx));
        return not_found(ctx);
    }

    next(const std::vector<middleware>& pipeline, std::size_t index, http_context& ctx) noexcept
        : pipeline_(&pipeline), index_(index), context_(&ctx) {}

private:
    // The end of the pipeline: nobody answered.
    static awaitable<void> not_found(http_context& ctx) {
        ctx.response.status_code = 404;
        co_return;
    }

    const std::vector<middleware>* pipeline_;
    std::size_t index_;
    http_context* context_;
};

struct app_options {
    // Shown as "<name> listening on <url>"; by default the program's file name.
    std::string name = "duplex";
    // Threads running the event loop; 0 means one per hardware thread.
    unsigned worker_threads = 0;
    // Connections beyond this are answered 503 and closed.
    std::size_t max_connections = 10'000;
    // A request head (and its body) must arrive in full within this once it has begun: a client that
    // trickles its request (slowloris) is disconnected. A response write that makes no progress for this
    // long (the client stopped reading) is abandoned too; a slow download that keeps moving is not.
    std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(10);
    // An HTTP keep-alive connection waiting for its next request is closed after this.
    std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(120);
    // On SIGINT/SIGTERM or stop(): how long handlers get to finish after every WebSocket was sent 1001.
    std::chrono::steady_clock::duration shutdown_timeout = std::chrono::seconds(5);
    // A request body larger than this is answered 413.
    std::size_t max_request_body_size = 1024 * 1024;
    // 414 / 431 limits of request heads.
    http::parser_limits http_limits{};
    // Limits and timeouts of accepted WebSockets (receive_buffer_size comes from websocket_options).
    ws::stream_options websocket_limits{};
};

namespace detail {

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

template <class Transport>
struct is_tls_transport : std::false_type {};
template <class Next>
struct is_tls_transport<tls::stream<Next>> : std::true_type {};

inline bool wants_keep_alive(const http::request& r) {
    if (r.headers.has_token("Connection", "close")) return false;
    if (r.version_major == 1 && r.version_minor == 0) return r.headers.has_token("Connection", "keep-alive");
    return true;
}

// One HTTP/1.1 connection, over TCP or TLS: requests through the pipeline until it closes or becomes a
// WebSocket. Over TLS the handshake runs first, here on the connection's strand, never in the accept loop.
template <class Transport>
class http_connection final : public upgrade_target,
                              public connection_base,
                              public std::enable_shared_from_this<http_connection<Transport>> {
public:
    http_connection(Transport transport, app_core& core)
        : transport_(std::move(transport)),
          core_(core),
          buffer_(std::make_unique_for_overwrite<std::byte[]>(buffer_capacity)),
          deadline_(transport_.get_executor()) {}

    awaitable<void> run() {
        ++core_.active_connections;
        const auto entry = core_.enroll(this->weak_from_this());
        try {
            // A shutdown that began between the accept and the enrolment did not see this connection.
            bool secured = !core_.stopping;
            if (!secured) close_transport(transport_);
            if constexpr (is_tls_transport<Transport>::value)
                if (secured) secured = co_await handshake();
            if (secured) co_await serve();
        } catch (const std::exception& e) {
            if (!websocket_) std::cerr << core_.options.name << ": connection ended: " << e.what() << "\n";
        }
        if (websocket_) websocket_->end_request();
        deadline_.cancel();
        core_.withdraw(entry);
        --core_.active_connections;
    }

    void begin_shutdown() override {
        asio::post(transport_executor_, [self = this->shared_from_this()] { self->shut_down(); });
    }

    awaitable<websocket> upgrade(const http::request& request, const accept_context& context,
                                 const websocket_options& options) override {
        auto limits = core_.options.websocket_limits;
        limits.receive_buffer_size = options.receive_buffer_size;
        websocket_.emplace(std::move(transport_), ws::role::server, limits);
        websocket_->prime(std::span(buffer_.get() + begin_, end_ - begin_));
        begin_ = end_ = 0;
        std::optional<duplex::deflate::options> compression;
        if (context.dangerous_enable_compression) {
            compression.emplace();
            compression->server_max_window_bits = context.server_max_window_bits;
            compression->disable_server_context_takeover = context.disable_server_context_takeover;
        }
        const http::headers no_extra_headers;
        co_await websocket_->accept(request, context.sub_protocol, no_extra_headers, compression);
        buffer_.reset();  // this connection speaks WebSocket from now on: its HTTP read buffer is not needed
        websocket_->start_keep_alive(context.keep_alive_interval.value_or(options.keep_alive_interval),
                                     context.keep_alive_timeout.value_or(options.keep_alive_timeout));
        if (core_.stopping) begin_shutdown();
        co_return websocket_->as_websocket();
    }

private:
    static constexpr std::size_t buffer_capacity = 4096;
    // How long our close_notify (or TCP half-close) and the peer's answer may take at the end.
    static constexpr auto goodbye_timeout = std::chrono::seconds(2);

    // The TLS handshake, bounded by https_options::handshake_timeout. Plain HTTP gets 400 from the TLS
    // layer; whatever fails, the transport is closed already and there is nothing worth reporting.
    awaitable<bool> handshake() {
        waiting_for_request_ = true;  // a shutdown ends a connection still in its handshake at once
        const auto failure = co_await transport_.accept(core_.https->handshake_timeout);
        waiting_for_request_ = false;
        co_return !failure;
    }

    awaitable<void> serve() {
        for (;;) {
            http::request_parser parser(core_.options.http_limits);
            const bool got_head = co_await read_head(parser);
            if (!got_head) co_return;
            if (parser.status() == http::parse_status::error) {
                co_await write_error(parser.error_status(), parser.error_message());
                co_return;
            }
            auto request = std::move(parser.get());
            std::string body;
            const auto body_status = co_await read_body(request, body);
            if (body_status != 0) {
                co_await write_error(body_status, http::reason_phrase(body_status));
                co_return;
            }
            const bool keep_alive = wants_keep_alive(request);
            http_context ctx(std::move(request), *this);
            ctx.request_body = std::move(body);
            std::exception_ptr failure;
            try {
                co_await duplex::next(core_.pipeline, 0, ctx)(ctx);
            } catch (...) {
                failure = std::current_exception();
            }
            if (ctx.websockets.accepted()) {
                if (failure) std::rethrow_exception(failure);
                co_return;
            }
            if (failure) {
                report(failure);
                ctx.response = {};
                ctx.response.status_code = 500;
            }
            const bool again = keep_alive && !failure && !core_.stopping;
            co_await write_response(ctx, again);
            if (!again) {
                co_await close_gracefully();
                co_return;
            }
        }
    }

    void report(std::exception_ptr failure) const {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            std::cerr << core_.options.name << ": request failed: " << e.what() << "\n";
        } catch (...) {
            std::cerr << core_.options.name << ": request failed with a non-standard exception\n";
        }
    }

    // Reads one request head. The idle timeout runs until its first byte, the request timeout after.
    awaitable<bool> read_head(http::request_parser& parser) {
        bool started = begin_ != end_;
        arm_deadline(started ? core_.options.request_timeout : core_.options.idle_timeout);
        for (;;) {
            begin_ += parser.feed(buffered());
            if (parser.status() != http::parse_status::need_more) break;
            waiting_for_request_ = parser.head_bytes() == 0;
            if (!started && !waiting_for_request_) {
                started = true;
                arm_deadline(core_.options.request_timeout);
            }
            // A shutdown that came while the previous response was being written found the connection
            // busy and left it to finish: it ends here, before waiting for another request.
            std::size_t n = 0;
            if (waiting_for_request_ && core_.stopping)
                read_error_ = asio::error::operation_aborted;
            else
                n = co_await read_some();
            waiting_for_request_ = false;
            if (n == 0) {
                co_await close_after_end_of_requests();
                co_return false;
            }
        }
        deadline_.cancel();
        co_return true;
    }

    // 0, or the status that refuses the body: 400 bad length, 413 too large, 501 transfer coding.
    awaitable<int> read_body(const http::request& request, std::string& body) {
        if (request.headers.contains("Transfer-Encoding")) co_return 501;
        const auto length_text = request.headers.get("Content-Length");
        if (!length_text) co_return 0;
        if (request.headers.count("Content-Length") != 1) co_return 400;
        std::size_t length = 0;
        const auto [end, ec] = std::from_chars(length_text->data(), length_text->data() + length_text->size(), length);
        if (ec != std::errc{} || end != length_text->data() + length_text->size()) co_return 400;
        if (length > core_.options.max_request_body_size) co_return 413;
        arm_deadline(core_.options.request_timeout);
        while (body.size() < length) {
            if (begin_ == end_) {
                const auto n = co_await read_some();
                if (n == 0) co_return 400;
            }
            const auto take = std::min(length - body.size(), end_ - begin_);
            body.append(reinterpret_cast<const char*>(buffer_.get() + begin_), take);
            begin_ += take;
        }
        deadline_.cancel();
        co_return 0;
    }

    std::string_view buffered() const noexcept {
        return {reinterpret_cast<const char*>(buffer_.get() + begin_), end_ - begin_};
    }

    // Bytes read (0 at end of stream, on error or on timeout).
    awaitable<std::size_t> read_some() {
        if (begin_ == end_) begin_ = end_ = 0;
        if (end_ == buffer_capacity) {
            std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        auto [ec, n] = co_await transport_.async_read_some(asio::buffer(buffer_.get() + end_, buffer_capacity - end_),
                                                           use_nothrow_awaitable);
        end_ += n;
        read_error_ = ec;
        co_return ec ? 0 : n;
    }

    awaitable<void> write_response(http_context& ctx, bool keep_alive) {
        auto& response = ctx.response;
        if (!response.body.empty() && !response.headers.contains("Content-Type"))
            response.headers.add("Content-Type", "text/plain; charset=utf-8");
        response.headers.set("Content-Length", std::to_string(response.body.size()));
        response.headers.set("Connection", keep_alive ? "keep-alive" : "close");
        std::string head;
        http::write_response_head(head, response.status_code, response.headers);
        const auto body = asio::buffer(response.body.data(), ctx.request.method != "HEAD" ? response.body.size() : 0);
        // request_timeout bounds each write, not the whole response: a large download to a slow client
        // goes on as long as it moves, one that stops reading is cut off.
        std::size_t written = 0;
        while (written < head.size() + body.size()) {
            arm_deadline(core_.options.request_timeout);
            const std::array<asio::const_buffer, 2> rest{
                asio::buffer(head) + written, body + (written > head.size() ? written - head.size() : 0)};
            auto [ec, n] = co_await transport_.async_write_some(rest, use_nothrow_awaitable);
            if (ec) break;
            written += n;
        }
        deadline_.cancel();
    }

    awaitable<void> write_error(int status, std::string_view message) {
        http_response response;
        response.status_code = status;
        response.body = std::string(message);
        http::request request;
        http_context ctx(std::move(request), *this);
        ctx.response = std::move(response);
        co_await write_response(ctx, false);
        co_await close_gracefully();
    }

    // Half-close (over TLS: close_notify), then read (bounded) until the client closes too, so that unread
    // request bytes do not turn our close into a reset that destroys the response in flight.
    awaitable<void> close_gracefully() {
        arm_deadline(goodbye_timeout);
        co_await async_shutdown_send(transport_);
        std::size_t n = 1;
        while (n != 0) {
            begin_ = end_ = 0;
            n = co_await read_some();
        }
        deadline_.cancel();
        close_transport(transport_);
    }

    // Between requests the connection ended: the client closed it (over TLS: its close_notify), it idled
    // past idle_timeout, or the app is stopping (both interrupt the read). A TLS connection that can still
    // say so sends its close_notify before closing; one the client dropped, or one cut off by the request
    // timeout, just closes.
    awaitable<void> close_after_end_of_requests() {
        const bool ended_cleanly = read_error_ == asio::error::eof || read_error_ == asio::error::operation_aborted;
        if (ended_cleanly && transport_is_open(transport_)) {
            arm_deadline(goodbye_timeout);
            co_await async_shutdown_send(transport_);
        }
        deadline_.cancel();
        close_transport(transport_);
    }

    void arm_deadline(std::chrono::steady_clock::duration timeout) {
        deadline_.expires_after(timeout);
        deadline_.async_wait([weak = this->weak_from_this()](std::error_code ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && !self->websocket_) self->interrupt();
        });
    }

    // Ends the connection from outside its coroutine. One waiting for its next request (or in its TLS
    // handshake) has its read cancelled, so that the coroutine closes it politely; one anywhere else is
    // closed at once.
    void interrupt() noexcept {
        if (waiting_for_request_) {
            std::error_code ignored;
            transport_.lowest_layer().cancel(ignored);
        } else {
            close_transport(transport_);
        }
    }

    // On the connection's executor: WebSockets get close 1001; a connection idle between requests
    // closes now; one in the middle of a request closes after its response.
    void shut_down() {
        if (websocket_) {
            if (websocket_->state() != websocket_state::open) return;
            asio::co_spawn(transport_executor_, close_going_away(*websocket_), asio::detached);
        } else if (waiting_for_request_) {
            interrupt();
        }
    }

    static awaitable<void> close_going_away(ws::stream<Transport> stream) {
        try {
            co_await stream.close_output(close_status::endpoint_unavailable, "server shutting down");
        } catch (const std::exception&) {
            // The connection is already ending; its handler sees why.
        }
    }

    Transport transport_;
    typename Transport::executor_type transport_executor_ = transport_.get_executor();
    app_core& core_;
    std::unique_ptr<std::byte[]> buffer_;
    std::size_t begin_ = 0, end_ = 0;
    asio::steady_timer deadline_;
    std::optional<ws::stream<Transport>> websocket_;
    bool waiting_for_request_ = false;
    std::error_code read_error_;
};

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

}  // namespace detail

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
            options.context = tls::server_context(files);
        }
        if (options.handshake_timeout <= std::chrono::steady_clock::duration::zero())
            throw std::invalid_argument("https_options::handshake_timeout must be positive");
        core_->https = std::move(options);
        return *this;
    }

    // Serves files under `root` for GET and HEAD (a directory serves its index.html); anything else, or
    // a path that leaves the folder in any way, goes on down the pipeline.
    app& use_static_files(const std::filesystem::path& root) {
        auto canonical_root = std::filesystem::canonical(root);
        return use([root = std::move(canonical_root)](http_context& ctx, next rest) -> awaitable<void> {
            if (ctx.request.method != "GET" && ctx.request.method != "HEAD") {
                co_await rest(ctx);
                co_return;
            }
            const auto file = http::resolve_static_file(root, ctx.request.path);
            std::ifstream in;
            if (file) in.open(*file, std::ios::binary);
            if (!in.is_open()) {
                co_await rest(ctx);
                co_return;
            }
            std::ostringstream content;
            content << in.rdbuf();
            ctx.response.status_code = 200;
            ctx.response.body = std::move(content).str();
            ctx.response.headers.set("Content-Type", std::string(http::content_type_for(*file)));
        });
    }

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
        asio::io_context io(static_cast<int>(thread_count()));
        // SIGINT and SIGTERM are caught before "listening on" is printed: whoever starts the app on that
        // line may stop it at once, and gets the graceful shutdown.
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([this](std::error_code ec, int) {
            if (!ec) stop();
        });
        std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> acceptors;
        acceptors_ = &acceptors;
        io_ = &io;
        for (const auto& url : parsed) listen(io, url, acceptors);
        if (acceptors.empty()) {
            io_ = nullptr;
            acceptors_ = nullptr;
            throw std::runtime_error("no address to listen on: " + chosen);
        }
        std::vector<std::thread> workers;
        for (unsigned i = 1; i < thread_count(); ++i) workers.emplace_back([&io] { io.run(); });
        io.run();
        for (auto& w : workers) w.join();
        io_ = nullptr;
        acceptors_ = nullptr;
    }

    // Thread-safe: stops accepting, sends close 1001 to every WebSocket, waits up to shutdown_timeout
    // for the handlers to finish, then ends run().
    void stop() {
        auto* io = io_.load();
        if (!io) return;
        asio::post(*io, [this, io] {
            if (core_->stopping.exchange(true)) return;
            for (auto& a : *acceptors_) {
                std::error_code ignored;
                a->close(ignored);
            }
            core_->shut_down_connections();
            asio::co_spawn(*io, drain(*io), asio::detached);
        });
    }

    // The URLs actually listened on (ports resolved), once run() has started.
    std::vector<std::string> listening_urls() const {
        std::lock_guard lock(urls_mutex_);
        return listening_urls_;
    }

private:
    static unsigned parse_thread_count(std::string_view text) {
        unsigned n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc{} || end != text.data() + text.size() || n == 0 || n > 1024)
            throw std::invalid_argument("--threads needs a number of threads from 1 to 1024, not '" + std::string(text) + "'");
        return n;
    }

    unsigned thread_count() const {
        const auto configured = core_->options.worker_threads;
        return configured != 0 ? configured : std::max(1u, std::thread::hardware_concurrency());
    }

    static bool origin_allowed(const http::request& request, const websocket_options& options) {
        const auto& allowed = options.allowed_origins;
        if (allowed.empty() || std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return true;
        const auto origin = request.headers.get("Origin");
        if (!origin) return true;  // not a browser: origins protect browsers' users, not servers
        return std::any_of(allowed.begin(), allowed.end(),
                           [&](const std::string& a) { return http::detail::iequals(a, *origin); });
    }

    void listen(asio::io_context& io, const detail::listen_url& url,
                std::vector<std::shared_ptr<asio::ip::tcp::acceptor>>& acceptors) {
        asio::ip::tcp::resolver resolver(io);
        for (const auto& entry : resolver.resolve(url.host, url.port, asio::ip::tcp::resolver::passive)) {
            auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(io);
            std::error_code ec;
            acceptor->open(entry.endpoint().protocol(), ec);
            if (!ec) acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
            if (!ec && entry.endpoint().address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
            if (!ec) acceptor->bind(entry.endpoint(), ec);
            if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
            if (ec) {
                std::cerr << core_->options.name << ": cannot listen on " << entry.endpoint() << ": " << ec.message() << "\n";
                continue;
            }
            const auto local = acceptor->local_endpoint();
            const auto address = local.address().to_string();
            const auto shown = url.scheme + "://" + (local.address().is_v6() ? "[" + address + "]" : address) + ":" +
                               std::to_string(local.port());
            {
                std::lock_guard lock(urls_mutex_);
                listening_urls_.push_back(shown);
            }
            std::cout << core_->options.name << " listening on " << shown << std::endl;
            auto tls_context = url.scheme == "https" ? core_->https->context : nullptr;
            asio::co_spawn(io, accept_loop(io, acceptor, std::move(tls_context)), asio::detached);
            acceptors.push_back(std::move(acceptor));
        }
    }

    // Accepts connections, for https:// with `tls_context`; each runs (and makes its TLS handshake) in a
    // coroutine of its own.
    awaitable<void> accept_loop(asio::io_context& io, std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                tls::shared_context tls_context) {
        for (;;) {
            // With several threads each connection gets a strand, so its coroutines never run on two
            // threads at once. One thread needs none: a strand would cost every completion a second trip
            // through the scheduler.
            const auto executor = thread_count() == 1 ? asio::any_io_executor(io.get_executor())
                                                      : asio::any_io_executor(asio::make_strand(io));
            auto [ec, socket] = co_await acceptor->async_accept(executor, detail::use_nothrow_awaitable);
            if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
            if (ec) continue;  // e.g. out of file descriptors: keep serving the connections we have
            std::error_code ignored;
            socket.set_option(asio::ip::tcp::no_delay(true), ignored);
            if (core_->active_connections >= core_->options.max_connections || core_->stopping) {
                if (tls_context) {
                    socket.close(ignored);  // a 503 would cost a TLS handshake, the work being refused
                } else {
                    const auto executor = socket.get_executor();
                    asio::co_spawn(executor, refuse(std::move(socket)), asio::detached);
                }
                continue;
            }
            // The socket comes typed with its strand; both transports hold it as a plain tcp::socket.
            asio::ip::tcp::socket connected(std::move(socket));
            if (tls_context)
                start_connection(tls::stream<asio::ip::tcp::socket>(std::move(connected), tls_context));
            else
                start_connection(std::move(connected));
        }
    }

    template <class Transport>
    void start_connection(Transport transport) {
        const auto executor = transport.get_executor();
        auto connection = std::make_shared<detail::http_connection<Transport>>(std::move(transport), *core_);
        asio::co_spawn(executor, [connection]() -> awaitable<void> { co_await connection->run(); }, asio::detached);
    }

    static awaitable<void> refuse(asio::ip::tcp::socket socket) {
        static constexpr std::string_view answer =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 19\r\nConnection: close\r\n\r\nServer at capacity\n";
        co_await asio::async_write(socket, asio::buffer(answer), detail::use_nothrow_awaitable);
        std::error_code ignored;
        socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        socket.close(ignored);
    }

    awaitable<void> drain(asio::io_context& io) {
        asio::steady_timer timer(io);
        const auto give_up = std::chrono::steady_clock::now() + core_->options.shutdown_timeout;
        while (core_->active_connections != 0 && std::chrono::steady_clock::now() < give_up) {
            timer.expires_after(std::chrono::milliseconds(20));
            co_await timer.async_wait(detail::use_nothrow_awaitable);
        }
        // Said aloud, because what is cut off here gets no close_notify, close frame or end of response.
        if (const std::size_t left = core_->active_connections; left != 0)
            std::cerr << core_->options.name << ": shutdown_timeout passed with " << left
                      << (left == 1 ? " connection" : " connections") << " still open; closing them\n";
        io.stop();
    }

    std::unique_ptr<detail::app_core> core_;
    std::vector<std::unique_ptr<websocket_options>> websocket_options_;
    std::string command_line_urls_;
    std::atomic<asio::io_context*> io_{nullptr};
    std::vector<std::shared_ptr<asio::ip::tcp::acceptor>>* acceptors_ = nullptr;
    mutable std::mutex urls_mutex_;
    std::vector<std::string> listening_urls_;
};

}  // namespace duplex
