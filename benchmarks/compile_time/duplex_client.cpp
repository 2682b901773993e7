// A minimal duplex client: connect (ws:// or wss://), send a line, print the reply, close.
#include <duplex/client/connect.hpp>

#include <iostream>
#include <string>

duplex::awaitable<void> hello(std::string url) {
    auto ws = co_await duplex::connect(url);
    co_await ws.send("hello");
    std::string reply;
    co_await ws.receive_message(reply, 1 << 20);
    std::cout << reply << "\n";
    co_await ws.close(duplex::close_status::normal_closure);
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    asio::io_context io;
    asio::co_spawn(io, hello(argv[1]), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();
}
