// The same program on Asio alone: a coroutine per connection echoing lines over TCP and TLS, on one
// io_context, stopped by SIGINT/SIGTERM.
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>

#include <memory>
#include <string>

template <class Stream>
asio::awaitable<void> echo(Stream stream) {
    std::string line;
    for (;;) {
        const auto [ec, n] = co_await asio::async_read_until(stream, asio::dynamic_buffer(line), '\n',
                                                             asio::experimental::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        co_await asio::async_write(stream, asio::buffer(line, n), asio::use_awaitable);
        line.erase(0, n);
    }
}

asio::awaitable<void> serve_tls(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> context) {
    asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(socket), *context);
    co_await tls.async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
    co_await echo(std::move(tls));
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor acceptor, std::shared_ptr<asio::ssl::context> context) {
    for (;;) {
        auto socket = co_await acceptor.async_accept(asio::use_awaitable);
        auto executor = socket.get_executor();
        if (context) asio::co_spawn(executor, serve_tls(std::move(socket), context), asio::detached);
        else asio::co_spawn(executor, echo(std::move(socket)), asio::detached);
    }
}

int main(int argc, char** argv) {
    asio::io_context io;
    std::shared_ptr<asio::ssl::context> context;
    if (argc == 3) {
        context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        context->use_certificate_chain_file(argv[1]);
        context->use_private_key_file(argv[2], asio::ssl::context::pem);
    }
    asio::ip::tcp::acceptor plain(io, {asio::ip::tcp::v4(), 5000});
    asio::co_spawn(io, listen(std::move(plain), nullptr), asio::detached);
    if (context) {
        asio::ip::tcp::acceptor secure(io, {asio::ip::tcp::v4(), 5001});
        asio::co_spawn(io, listen(std::move(secure), context), asio::detached);
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, auto) { io.stop(); });
    io.run();
}
