// A program that uses an installed duplex (tests/install): connects to URL, sends TEXT, prints the
// reply and closes. Built header-only through pkg-config and Meson, and with DUPLEX_SEPARATE_COMPILATION
// (plus duplex_src.cpp) through CMake.
//
//   consumer URL TEXT
#include <duplex/client/connect.hpp>

#include <exception>
#include <iostream>
#include <string>

namespace {

duplex::awaitable<void> say(std::string url, std::string text) {
    auto ws = co_await duplex::connect(url);
    co_await ws.send(text);
    std::string reply;
    co_await ws.receive_message(reply, 1 << 16);
    std::cout << "reply: " << reply << std::endl;
    co_await ws.close(duplex::close_status::normal_closure);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: consumer URL TEXT\n";
        return 2;
    }
    asio::io_context io;
    int status = 0;
    asio::co_spawn(io, say(argv[1], argv[2]), [&](std::exception_ptr e) {
        if (!e) return;
        status = 1;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& failure) {
            std::cerr << "consumer: " << failure.what() << "\n";
        }
    });
    io.run();
    return status;
}
