// frame-blaster — the server side of the client benchmark (benchmarks/run --client): a WebSocket server
// that costs as little as a server can, so that what is measured is the client. A thread per
// connection, blocking sockets; the upgrade is answered with duplex's sans-I/O handshake.
//
//   frame-blaster [--urls http://HOST:PORT]      (prints "frame-blaster listening on http://HOST:PORT")
//
// What a connection gets depends on the request's target:
//   /blast?size=N&text=0|1   frames of N bytes (binary, or ASCII text), pre-encoded and written as fast
//                            as the client reads them, until it goes away
//   /rr?size=N               request/response: each frame the client sends is answered by one binary
//                            frame of N bytes (latency)
//   anything else            nothing: the client's close frame is answered and the connection closed
//                            (connects per second)
#include <duplex/http/parser.hpp>
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/handshake.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace ws = duplex::ws;

bool write_all(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size != 0) {
        const auto n = ::send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

std::size_t query_number(std::string_view target, std::string_view name, std::size_t fallback) {
    const auto at = target.find(std::string(name) + "=");
    if (at == std::string_view::npos) return fallback;
    return std::strtoull(std::string(target.substr(at + name.size() + 1)).c_str(), nullptr, 10);
}

// One frame header and payload, as a server sends it (unmasked).
void append_frame(std::vector<std::byte>& out, ws::opcode op, const std::byte* payload, std::size_t size) {
    ws::frame_header h;
    h.op = op;
    h.payload_length = size;
    std::byte header[ws::max_header_size];
    const auto n = ws::encode_header(h, header);
    out.insert(out.end(), header, header + n);
    out.insert(out.end(), payload, payload + size);
}

std::vector<std::byte> payload_of(std::size_t size, bool text) {
    static constexpr std::string_view words = "the quick brown fox jumps over the lazy dog ";
    std::vector<std::byte> payload(size);
    for (std::size_t i = 0; i < size; ++i)
        payload[i] = text ? static_cast<std::byte>(words[i % words.size()]) : static_cast<std::byte>(i * 131 + 7);
    return payload;
}

// Reads the client's frames one by one; `on_frame` gets each data or close frame's opcode.
template <class OnFrame>
void read_frames(int fd, std::vector<std::byte> pending, OnFrame on_frame) {
    std::vector<std::byte> buffer(64 * 1024);
    for (;;) {
        ws::frame_header h;
        const auto decoded = ws::decode_header(pending.data(), pending.size(), h);
        if (decoded.status == ws::decode_status::ok && pending.size() >= decoded.header_size + h.payload_length) {
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(decoded.header_size + h.payload_length));
            if (!on_frame(h.op)) return;
            continue;
        }
        const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) return;
        pending.insert(pending.end(), buffer.data(), buffer.data() + n);
    }
}

// The answer to the client's close frame (1000), so that its close handshake completes.
void answer_close(int fd) {
    const std::byte close[] = {std::byte{0x88}, std::byte{0x02}, std::byte{0x03}, std::byte{0xe8}};
    write_all(fd, close, sizeof close);
}

void serve(int fd) {
    duplex::http::request_parser parser;
    char buffer[8192];
    std::size_t used = 0;
    std::string rest;
    while (parser.status() == duplex::http::parse_status::need_more) {
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return;
        used = parser.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
        rest.assign(buffer + used, static_cast<std::size_t>(n) - used);
    }
    if (parser.status() != duplex::http::parse_status::done) return;
    const auto& request = parser.get();
    const auto key = request.headers.get("Sec-WebSocket-Key");
    if (!key) return;
    const auto answer = ws::handshake::make_accept_response(*key, "");
    if (!write_all(fd, answer.data(), answer.size())) return;
    std::vector<std::byte> pending(reinterpret_cast<const std::byte*>(rest.data()),
                                   reinterpret_cast<const std::byte*>(rest.data()) + rest.size());
    const std::string_view target = request.target;
    const std::size_t size = query_number(target, "size", 64);
    if (target.starts_with("/blast")) {
        const bool text = query_number(target, "text", 0) != 0;
        const auto payload = payload_of(size, text);
        std::vector<std::byte> frames;  // at least 256 KiB of frames, written in one call each time
        do append_frame(frames, text ? ws::opcode::text : ws::opcode::binary, payload.data(), payload.size());
        while (frames.size() < 256 * 1024);
        while (write_all(fd, frames.data(), frames.size())) {
        }
    } else if (target.starts_with("/rr")) {
        std::vector<std::byte> reply;
        const auto payload = payload_of(size, false);
        append_frame(reply, ws::opcode::binary, payload.data(), payload.size());
        read_frames(fd, std::move(pending), [&](ws::opcode op) {
            if (op != ws::opcode::close) return write_all(fd, reply.data(), reply.size());
            answer_close(fd);
            return false;
        });
    } else {
        read_frames(fd, std::move(pending), [&](ws::opcode op) {
            if (op != ws::opcode::close) return true;
            answer_close(fd);
            return false;
        });
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned port = 0;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string_view(argv[i]) == "--urls") {
            std::string url = argv[++i];
            if (url.starts_with("http://")) url = url.substr(7);
            const auto colon = url.rfind(':');
            host = url.substr(0, colon);
            port = static_cast<unsigned>(std::atoi(url.c_str() + colon + 1));
        }
    ::signal(SIGPIPE, SIG_IGN);
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &address.sin_addr);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 1024) != 0) {
        std::perror("frame-blaster");
        return 1;
    }
    socklen_t length = sizeof address;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    std::printf("frame-blaster listening on http://%s:%u\n", host.c_str(), ntohs(address.sin_port));
    std::fflush(stdout);
    for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
            return 1;
        }
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::thread([fd] {
            serve(fd);
            ::close(fd);
        }).detach();
    }
}
