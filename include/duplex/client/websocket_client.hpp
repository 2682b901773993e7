// duplex::websocket_client — connects WebSockets that share HTTP/2 connections: each WebSocket asked
// for over HTTP/2 (connect_options::http_version) goes on an open HTTP/2 connection to its origin when
// one takes new streams, else on a new one, which later WebSockets then share. This is what .NET does
// when ClientWebSocket.ConnectAsync is handed one HttpMessageInvoker for many sockets. WebSockets over
// HTTP/1.1 each have their connection, as with duplex::connect.
//
// One origin is the URI's scheme, host and port, reached the same way (the proxy, the TLS server name):
// connections are not shared between different connect_options of those. Concurrent first connects to
// an origin share the connection the first one opens. Each connection ends (GOAWAY) once the client is
// gone and its last WebSocket has closed; a server's GOAWAY, or its SETTINGS_MAX_CONCURRENT_STREAMS,
// makes the next WebSocket go on a new connection.
//
// The client and its connections live on the executor it was made with (a single-threaded one: an
// io_context run by one thread, or a strand); connect() may be awaited from any coroutine. Header-only
// also under DUPLEX_SEPARATE_COMPILATION.
#pragma once

#include <duplex/client/connect.hpp>
#include <duplex/client/detail/connect_steps.hpp>
#include <duplex/config.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

class websocket_client {
public:
    explicit websocket_client(asio::any_io_executor executor) : state_(std::make_shared<state>(std::move(executor))) {}
    websocket_client(const websocket_client&) = delete;
    websocket_client& operator=(const websocket_client&) = delete;
    // Lets go of the connections: each ends once its WebSockets have.
    ~websocket_client() {
        asio::post(state_->executor, [s = state_] { s->release_all(); });
    }

    // As duplex::connect, sharing HTTP/2 connections as described above.
    awaitable<websocket> connect(std::string_view uri, connect_options options) {
        return asio::co_spawn(state_->executor, connect_here(state_, std::string(uri), std::move(options)),
                              asio::use_awaitable);
    }

    // The HTTP/2 connections open now that WebSockets may still be added to (for tests and monitoring;
    // on the client's executor).
    std::size_t http2_connections() const {
        std::size_t n = 0;
        for (const auto& [origin, entry] : state_->origins)
            for (const auto& connection : entry.connections) n += connection->has_ended() ? 0 : 1;
        return n;
    }

private:
    struct origin_entry {
        std::vector<std::shared_ptr<client::detail::http2_origin_connection>> connections;
        int opening = 0;                                   // new connections being opened
        std::shared_ptr<asio::steady_timer> opened;        // connects waiting for them wait on it
    };
    struct state {
        explicit state(asio::any_io_executor e) : executor(std::move(e)) {}
        asio::any_io_executor executor;
        std::map<std::string, origin_entry> origins;
        bool released = false;  // the websocket_client is gone: connections opened now are not kept

        void release_all() {
            released = true;
            for (auto& [origin, entry] : origins)
                for (auto& connection : entry.connections) connection->release();
            origins.clear();
        }
    };

    static std::string origin_key(const client::websocket_uri& uri, const connect_options& options,
                                  const std::optional<client::proxy_uri>& proxy) {
        std::string key = uri.secure ? "wss://" : "ws://";
        key += client::detail::bracketed_host(uri.host) + ":" + std::to_string(uri.port);
        if (proxy) key += " via " + proxy->authority() + (proxy->kind == client::proxy_kind::http_connect ? " http" : " socks");
        if (!options.tls.server_name.empty()) key += " as " + options.tls.server_name;
        return key;
    }

    // A connection of the entry that takes a new stream now, after dropping the ones that never will
    // again (each then ends with its last stream). Full ones (at the server's stream limit) stay.
    static std::shared_ptr<client::detail::http2_origin_connection> usable(origin_entry& entry) {
        std::erase_if(entry.connections, [](const auto& c) {
            if (!c->has_ended()) return false;
            c->release();
            return true;
        });
        for (const auto& connection : entry.connections)
            if (connection->takes_new_streams()) return connection;
        return nullptr;
    }

    static awaitable<websocket> connect_here(std::shared_ptr<state> s, std::string text, connect_options options) {
        const auto uri = client::parse_websocket_uri(text);
        if (!uri) throw std::invalid_argument("not a ws:// or wss:// URI: " + text);
        const auto use = detail::http2_wanted(*uri, options);
        if (use == detail::http2_use::no) co_return co_await duplex::connect(text, options);
        const auto proxy = detail::chosen_proxy(*uri, options);
        const auto key = origin_key(*uri, options, proxy);
        for (;;) {
            auto& entry = s->origins[key];
            if (auto connection = usable(entry)) co_return co_await connection->open(*uri, options);
            if (entry.opening == 0) break;
            // Another connect is opening this origin's connection: wait for it, then look again.
            auto opened = entry.opened;
            co_await opened->async_wait(detail::use_nothrow_awaitable);
        }
        auto& entry = s->origins[key];
        ++entry.opening;
        if (!entry.opened) entry.opened = std::make_shared<asio::steady_timer>(s->executor, asio::steady_timer::time_point::max());
        auto opened = entry.opened;
        struct wake_on_exit {
            std::shared_ptr<state>& s;
            const std::string& key;
            std::shared_ptr<asio::steady_timer> opened;
            ~wake_on_exit() {
                if (auto it = s->origins.find(key); it != s->origins.end()) {
                    --it->second.opening;
                    it->second.opened.reset();
                }
                opened->cancel();
            }
        };
        std::shared_ptr<client::detail::http2_origin_connection> connection;
        std::optional<tls::stream<asio::ip::tcp::socket>> fallback;
        auto context = options.tls.context;
        if (uri->secure && !context) context = tls::client_context(options.tls);
        {
            wake_on_exit wake{s, key, opened};
            connection = co_await detail::open_http2(*uri, options, proxy, context, use, fallback);
            if (connection && !s->released) s->origins[key].connections.push_back(connection);
        }
        if (!connection) co_return co_await detail::open_http1(*uri, options, proxy, context, std::move(fallback), true);
        // Opened after the client was gone: the WebSocket alone holds it, as with duplex::connect.
        detail::release_when_done release{*connection, !s->released};
        co_return co_await connection->open(*uri, options);
    }

    std::shared_ptr<state> state_;
};

}  // namespace duplex
