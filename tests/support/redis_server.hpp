// A real redis-server (Debian's) for the tests, started on a free port of 127.0.0.1 with nothing saved
// to disk, and ended by its PID. A missing redis-server fails the test: these tests never skip.
#pragma once

#include <doctest/doctest.h>

#include <asio.hpp>

#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace test {

inline unsigned short free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

class redis_server {
public:
    // `extra`: more configuration as command-line directives, e.g. {"--requirepass", "pw"}.
    explicit redis_server(std::vector<std::string> extra = {}, unsigned short port = 0)
        : port_(port ? port : free_port()), extra_(std::move(extra)) {
        start();
    }

    // TLS only (rediss://), with the certificate and key that examples/tls_echo/make-certs.sh wrote to
    // `dir` (server.pem, server.key, for 127.0.0.1); clients need no certificate.
    static std::vector<std::string> tls_only(const std::string& dir, unsigned short port) {
        return {"--port", "0", "--tls-port", std::to_string(port), "--tls-cert-file", dir + "/server.pem",
                "--tls-key-file", dir + "/server.key", "--tls-ca-cert-file", dir + "/ca.pem", "--tls-auth-clients", "no"};
    }
    ~redis_server() { kill_now(); }

    unsigned short port() const noexcept { return port_; }
    std::string url(const std::string& userinfo = "") const {
        return "redis://" + (userinfo.empty() ? "" : userinfo + "@") + "127.0.0.1:" + std::to_string(port_);
    }

    // SIGKILL, as a crash: no goodbye to the clients.
    void kill_now() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    // SIGSTOP / SIGCONT: a server that stops reading, as one overloaded or swapped out.
    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }

    // On the same port, with the same configuration.
    void start() {
        REQUIRE_MESSAGE(::access("/usr/bin/redis-server", X_OK) == 0, "redis-server is missing: apt-get install redis-server");
        std::vector<std::string> args = {"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--loglevel", "warning"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            // Its log (start-up banner, warnings) goes to stdout: out of the test's output.
            if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        // Ready once it accepts connections (bounded).
        for (int i = 0; i < 200; ++i) {
            asio::io_context io;
            asio::ip::tcp::socket s(io);
            std::error_code ec;
            s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        FAIL("redis-server did not start on port " << port_);
    }

    // One command over a fresh connection (the test's own admin client), the reply's first line.
    std::string command(const std::vector<std::string>& args, const std::string& password = "") const {
        asio::io_context io;
        asio::ip::tcp::socket s(io);
        s.connect({asio::ip::make_address("127.0.0.1"), port_});
        std::string out;
        const auto append = [&](const std::vector<std::string>& cmd) {
            out += "*" + std::to_string(cmd.size()) + "\r\n";
            for (const auto& a : cmd) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
        };
        if (!password.empty()) append({"AUTH", password});
        append(args);
        asio::write(s, asio::buffer(out));
        std::string in;
        std::size_t lines = password.empty() ? 1 : 2;
        char buf[4096];
        while (true) {
            std::size_t seen = 0, pos = 0;
            while ((pos = in.find("\r\n", pos)) != std::string::npos) ++seen, pos += 2;
            if (seen >= lines) break;
            in.append(buf, s.read_some(asio::buffer(buf)));
        }
        if (!password.empty()) in = in.substr(in.find("\r\n") + 2);
        return in.substr(0, in.find("\r\n"));
    }

private:
    unsigned short port_;
    std::vector<std::string> extra_;
    pid_t pid_ = -1;
};

}  // namespace test
