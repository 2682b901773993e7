// The same program on Asio alone: resolve, connect, TLS with certificate and host name checks for
// "secure" targets, send a line, read a line back, close.
#include <asio.hpp>
#include <asio/ssl.hpp>

#include <iostream>
#include <string>

template <class Stream>
asio::awaitable<void> exchange(Stream& stream) {
    co_await asio::async_write(stream, asio::buffer(std::string_view("hello\n")), asio::use_awaitable);
    std::string reply;
    co_await asio::async_read_until(stream, asio::dynamic_buffer(reply), '\n', asio::use_awaitable);
    std::cout << reply;
}

asio::awaitable<void> hello(std::string host, std::string port, bool secure) {
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(executor);
    const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
    asio::ip::tcp::socket socket(executor);
    co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
    if (!secure) {
        co_await exchange(socket);
        co_return;
    }
    asio::ssl::context context(asio::ssl::context::tls_client);
    context.set_default_verify_paths();
    context.set_verify_mode(asio::ssl::verify_peer);
    asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(socket), context);
    SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());
    tls.set_verify_callback(asio::ssl::host_name_verification(host));
    co_await tls.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    co_await exchange(tls);
    co_await tls.async_shutdown(asio::use_awaitable);
}

int main(int argc, char** argv) {
    if (argc != 4) return 2;
    asio::io_context io;
    asio::co_spawn(io, hello(argv[1], argv[2], std::string_view(argv[3]) == "tls"), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();
}
