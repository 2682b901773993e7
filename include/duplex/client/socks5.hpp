// The SOCKS5 handshake with a proxy (RFC 1928), sans-I/O, with username/password authentication
// (RFC 1929): the method selection, the authentication, the CONNECT request and the proxy's reply.
// tunnel.hpp drives it over a socket; tests and the fuzzer drive it with bytes.
//
//   socks5_handshake h("example.com", 443, proxy);   // a host name: the proxy resolves it (socks5h://)
//   for (;;) {
//       write(h.take_output());
//       if (h.status() != need_more) break;
//       h.feed(read());
//   }
#pragma once

#include <duplex/client/proxy.hpp>
#include <duplex/client/proxy_error.hpp>

#include <asio/ip/address.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duplex::client {

namespace socks5 {
inline constexpr char version = 5;
inline constexpr char authentication_version = 1;  // RFC 1929's sub-negotiation
inline constexpr char command_connect = 1;
enum method : unsigned char { no_authentication = 0, username_password = 2, no_acceptable_methods = 0xFF };
enum address_type : unsigned char { ipv4 = 1, domain_name = 3, ipv6 = 4 };
}  // namespace socks5

class socks5_handshake final : public proxy_handshake {
public:
    // A tunnel to host:port through a SOCKS5 proxy. `host` is an IPv4 or IPv6 address (socks5://, resolved
    // by the caller) or a host name of at most 255 bytes, which the proxy resolves (socks5h://). The
    // proxy's credentials, when it has them, are offered beside "no authentication"; each is at most 255
    // bytes. Throws std::invalid_argument for a name or credential that is too long.
    socks5_handshake(std::string_view host, std::uint16_t port, const proxy_uri& proxy)
        : proxy_handshake(detail::bracketed_host(host) + ":" + std::to_string(port)) {
        if (proxy.has_credentials()) {
            if (proxy.username.size() > 255 || proxy.password.size() > 255)
                throw std::invalid_argument("a SOCKS5 username and password have at most 255 bytes each");
            credentials_ = {socks5::authentication_version};
            append_counted(credentials_, proxy.username);
            append_counted(credentials_, proxy.password);
            username_ = proxy.username;
        }
        connect_request_ = {socks5::version, socks5::command_connect, 0};
        std::error_code not_an_address;
        const auto address = asio::ip::make_address(std::string(host), not_an_address);
        if (!not_an_address && address.is_v4()) {
            connect_request_.push_back(static_cast<char>(socks5::ipv4));
            append_bytes(connect_request_, address.to_v4().to_bytes());
        } else if (!not_an_address) {
            connect_request_.push_back(static_cast<char>(socks5::ipv6));
            append_bytes(connect_request_, address.to_v6().to_bytes());
        } else {
            if (host.empty() || host.size() > 255)
                throw std::invalid_argument("a SOCKS5 proxy takes host names of 1 to 255 bytes");
            connect_request_.push_back(static_cast<char>(socks5::domain_name));
            append_counted(connect_request_, host);
        }
        connect_request_.push_back(static_cast<char>(port >> 8));
        connect_request_.push_back(static_cast<char>(port & 0xFF));

        output_ = {socks5::version};
        if (credentials_.empty()) {
            output_ += {1, static_cast<char>(socks5::no_authentication)};
        } else {
            output_ += {2, static_cast<char>(socks5::no_authentication), static_cast<char>(socks5::username_password)};
        }
    }

    // The method selection at first, then the authentication and the CONNECT request as the answers
    // call for them.
    std::string take_output() override { return std::exchange(output_, std::string()); }

    // Uses the proxy's answers up to its last reply, never more.
    std::size_t feed(std::string_view bytes) override {
        std::size_t used = 0;
        while (status() == proxy_handshake_status::need_more && output_.empty() && used < bytes.size()) {
            const auto wanted = expected_size();
            const auto take = std::min(wanted - answer_.size(), bytes.size() - used);
            answer_.append(bytes.substr(used, take));
            used += take;
            if (answer_.size() == expected_size()) step();
        }
        return used;
    }


private:
    enum class stage { method, authentication, reply };

    static void append_counted(std::string& out, std::string_view text) {
        out.push_back(static_cast<char>(text.size()));
        out.append(text);
    }
    template <class Bytes>
    static void append_bytes(std::string& out, const Bytes& bytes) {
        for (const auto b : bytes) out.push_back(static_cast<char>(b));
    }
    unsigned char at(std::size_t i) const noexcept { return static_cast<unsigned char>(answer_[i]); }
    static std::string number(unsigned char byte) { return std::to_string(byte); }

    // The size of the answer awaited, as far as what has come of it tells: a reply's length shows in its
    // fourth and fifth bytes, and a refusal (or a malformed reply) is judged on those five.
    std::size_t expected_size() const noexcept {
        if (stage_ != stage::reply) return 2;
        if (answer_.size() < 5 || at(0) != socks5::version || at(1) != 0) return 5;
        switch (at(3)) {
        case socks5::ipv4: return 4 + 4 + 2;
        case socks5::ipv6: return 4 + 16 + 2;
        case socks5::domain_name: return 4 + 1 + at(4) + 2;
        default: return 5;
        }
    }

    // An answer of the awaited size has come.
    void step() {
        // RFC 1929's answer starts with its own version byte, 1 (some proxies send 5): only its status matters.
        if (stage_ != stage::authentication && at(0) != socks5::version)
            return fail(proxy_errc::malformed_reply, "did not answer in SOCKS5 (version byte " + number(at(0)) + ")");
        switch (stage_) {
        case stage::method:
            if (at(1) == socks5::no_acceptable_methods)
                return fail(proxy_errc::no_acceptable_method,
                            credentials_.empty() ? "accepts none of the methods offered (no authentication)"
                                                 : "accepts none of the methods offered (no authentication, "
                                                   "username/password)");
            if (at(1) == socks5::username_password && !credentials_.empty())
                return next(stage::authentication, std::move(credentials_));
            if (at(1) == socks5::no_authentication) return next(stage::reply, std::move(connect_request_));
            return fail(proxy_errc::malformed_reply, "chose an authentication method not offered (" + number(at(1)) + ")");
        case stage::authentication:
            if (at(1) != 0) return fail(proxy_errc::authentication_failed, "refused user '" + username_ + "'");
            return next(stage::reply, std::move(connect_request_));
        case stage::reply:
            if (at(1) != 0) return refuse(at(1));
            if (at(3) != socks5::ipv4 && at(3) != socks5::ipv6 && at(3) != socks5::domain_name)
                return fail(proxy_errc::malformed_reply, "answered with an unknown address type (" + number(at(3)) + ")");
            return succeed();
        }
    }

    void next(stage s, std::string request) {
        stage_ = s;
        answer_.clear();
        output_ = std::move(request);
    }

    void refuse(unsigned char reply) {
        // Reply codes 1-8 are proxy_errc's general_failure … address_type_not_supported, in order.
        const auto first = static_cast<int>(proxy_errc::general_failure);
        const auto why = reply >= 1 && reply <= 8 ? static_cast<proxy_errc>(first + reply - 1) : proxy_errc::unknown_reply;
        fail(why, "refused the connection to " + target() + " (reply " + number(reply) + ")");
    }

    std::string username_;
    std::string credentials_;      // the RFC 1929 request, sent if the proxy picks username/password
    std::string connect_request_;  // sent once the method (and the authentication) is settled
    std::string output_;
    std::string answer_;           // the answer being gathered
    stage stage_ = stage::method;
};

}  // namespace duplex::client
