// The proxy handshakes (http_connect_handshake, socks5_handshake) on arbitrary answers from a proxy.
//
// Input: a config byte (bit 0: SOCKS5 or HTTP CONNECT; bit 1: with credentials; bits 2-3: the target as
// a host name, an IPv4 or an IPv6 address), a chunk-size byte (0 means 1), then the proxy's bytes, fed
// in chunks of that size while the handshake wants them.
//
// Properties: a feed uses at most what it is given and nothing once the handshake is over; it ends
// failed with a proxy_errc and a detail, or done; HTTP CONNECT is done only on a 2xx answer, having used
// exactly its head; SOCKS5 is done only after sending its CONNECT request, having used exactly two bytes
// per answer before the reply and the reply's announced length; everything it sends is well-formed
// (method selection, RFC 1929 request when credentials were offered and chosen, CONNECT).
#include <duplex/client/http_connect.hpp>
#include <duplex/client/socks5.hpp>

#include "fuzz_support.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace duplex::client;

namespace {

// Checks each message a SOCKS5 handshake sends, in order: method selection, then maybe the RFC 1929
// request, then CONNECT.
void check_socks5_output(const std::string& out, std::size_t index, bool credentials) {
    const auto at = [&](std::size_t i) { return static_cast<unsigned char>(out[i]); };
    if (index == 0) {
        FUZZ_CHECK(out.size() == 2u + at(1) && at(0) == 5 && at(1) == (credentials ? 2 : 1));
        return;
    }
    if (credentials && at(0) == 1) {
        FUZZ_CHECK(out.size() >= 3 && out.size() == 3u + at(1) + at(2 + at(1)));
        return;
    }
    FUZZ_CHECK(out.size() >= 7 && at(0) == 5 && at(1) == 1 && at(2) == 0);
    const std::size_t address = at(3) == 1 ? 4 : at(3) == 4 ? 16 : at(3) == 3 ? 1u + at(4) : 0;
    FUZZ_CHECK(address != 0 && out.size() == 4 + address + 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto config = in.byte();
    const std::size_t chunk = std::max<std::size_t>(1, in.byte());
    const auto answers = fuzz::as_text(in.rest());
    const bool socks = config & 1, credentials = config & 2;
    const char* const hosts[] = {"example.com", "192.0.2.7", "2001:db8::1", "ws.example"};
    const std::string host = hosts[(config >> 2) & 3];
    auto proxy = *parse_proxy_uri(std::string(socks ? "socks5h://" : "http://") + (credentials ? "user:pw@" : "") + "p:1");

    std::unique_ptr<proxy_handshake> handshake;
    http_connect_handshake* http = nullptr;
    if (socks) {
        handshake = std::make_unique<socks5_handshake>(host, 443, proxy);
    } else {
        auto h = std::make_unique<http_connect_handshake>(proxy, host, 443);
        http = h.get();
        handshake = std::move(h);
    }

    std::size_t used = 0, outputs = 0;
    bool sent_connect = false;
    auto out = handshake->take_output();
    for (;;) {
        if (!out.empty()) {
            if (socks) {
                check_socks5_output(out, outputs, credentials);
                sent_connect = out[0] == 5 && outputs > 0;
            } else {
                FUZZ_CHECK(outputs == 0 && out.starts_with("CONNECT "));
            }
            ++outputs;
        }
        if (handshake->status() != proxy_handshake_status::need_more || used == answers.size()) break;
        const auto piece = answers.substr(used, chunk);
        const auto n = handshake->feed(piece);
        FUZZ_CHECK(n <= piece.size());
        used += n;
        out = handshake->take_output();
        // Still gathering an answer, with nothing to say: every byte was taken.
        if (handshake->status() == proxy_handshake_status::need_more && out.empty()) FUZZ_CHECK(n == piece.size());
    }
    if (handshake->status() != proxy_handshake_status::need_more) FUZZ_CHECK(handshake->feed("more") == 0);

    switch (handshake->status()) {
    case proxy_handshake_status::failed:
        FUZZ_CHECK(handshake->error().category() == proxy_category() && !handshake->detail().empty());
        break;
    case proxy_handshake_status::done:
        FUZZ_CHECK(!handshake->error());
        if (http) {
            FUZZ_CHECK(http->response().status_code >= 200 && http->response().status_code <= 299);
            // The head ends at its first empty line (CRLF or a bare LF).
            const auto lf_lf = answers.find("\n\n"), lf_crlf = answers.find("\n\r\n");
            const auto end = std::min(lf_lf == answers.npos ? answers.npos : lf_lf + 2,
                                      lf_crlf == answers.npos ? answers.npos : lf_crlf + 3);
            FUZZ_CHECK(used == end);
        } else {
            FUZZ_CHECK(sent_connect);
            const auto at = [&](std::size_t i) { return static_cast<unsigned char>(answers[i]); };
            const std::size_t reply = at(1) == 2 ? 4 : 2;  // after the method (and the RFC 1929 answer)
            const std::size_t address = at(reply + 3) == 1 ? 4 : at(reply + 3) == 4 ? 16 : 1u + at(reply + 4);
            FUZZ_CHECK(used == reply + 4 + address + 2);
        }
        break;
    case proxy_handshake_status::need_more:
        FUZZ_CHECK(!handshake->error() && used == answers.size());
        break;
    }
    return 0;
}
