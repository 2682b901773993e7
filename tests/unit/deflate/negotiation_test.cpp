#include <duplex/deflate/negotiation.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace deflate = duplex::deflate;
using deflate::element_kind;

namespace {

deflate::parse_result parse_offer(std::string_view element) { return deflate::parse_parameters(element, element_kind::offer); }
deflate::parse_result parse_response(std::string_view element) {
    return deflate::parse_parameters(element, element_kind::response);
}

std::optional<deflate::agreement> select(std::string_view header_value, const deflate::options& ours = {}) {
    duplex::http::headers h;
    h.add("Sec-WebSocket-Extensions", std::string(header_value));
    return deflate::select_offer(h, ours);
}

deflate::response_check validate(std::string_view header_value, const deflate::options& ours = {}) {
    duplex::http::headers h;
    if (!header_value.empty()) h.add("Sec-WebSocket-Extensions", std::string(header_value));
    return deflate::validate_response(h, ours);
}

// Every value of a window-size parameter worth trying: absent, and each valid size.
std::vector<std::optional<int>> optional_window_sizes() {
    std::vector<std::optional<int>> sizes{std::nullopt};
    for (int bits = 8; bits <= 15; ++bits) sizes.emplace_back(bits);
    return sizes;
}

std::string element_of(const deflate::parameters& p) {
    std::string s(deflate::extension_name);
    if (p.server_no_context_takeover) s += "; server_no_context_takeover";
    if (p.client_no_context_takeover) s += "; client_no_context_takeover";
    if (p.server_max_window_bits) s += "; server_max_window_bits=" + std::to_string(*p.server_max_window_bits);
    if (p.client_max_window_bits) {
        s += "; client_max_window_bits";
        if (*p.client_max_window_bits != deflate::parameters::no_value) s += "=" + std::to_string(*p.client_max_window_bits);
    }
    return s;
}

}  // namespace

TEST_CASE("parsing: each parameter, with every form of value the RFC allows") {
    auto p = parse_offer("permessage-deflate");
    REQUIRE(p);
    CHECK_FALSE(p.parameters->server_no_context_takeover);
    CHECK_FALSE(p.parameters->client_no_context_takeover);
    CHECK_FALSE(p.parameters->server_max_window_bits);
    CHECK_FALSE(p.parameters->client_max_window_bits);

    p = parse_offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=10; client_max_window_bits=9");
    REQUIRE(p);
    CHECK(p.parameters->server_no_context_takeover);
    CHECK(p.parameters->client_no_context_takeover);
    CHECK(p.parameters->server_max_window_bits == 10);
    CHECK(p.parameters->client_max_window_bits == 9);

    SUBCASE("client_max_window_bits without a value is an offer's way of saying it is supported") {
        p = parse_offer("permessage-deflate; client_max_window_bits");
        REQUIRE(p);
        CHECK(p.parameters->client_max_window_bits == deflate::parameters::no_value);
        CHECK_FALSE(parse_response("permessage-deflate; client_max_window_bits"));
    }
    SUBCASE("every window size from 8 to 15, in both parameters") {
        for (int bits = 8; bits <= 15; ++bits) {
            const auto text = std::to_string(bits);
            p = parse_response("permessage-deflate; server_max_window_bits=" + text + "; client_max_window_bits=" + text);
            REQUIRE(p);
            CHECK(p.parameters->server_max_window_bits == bits);
            CHECK(p.parameters->client_max_window_bits == bits);
        }
    }
    SUBCASE("a quoted-string value counts as its unescaped content (RFC 6455 §9.1)") {
        p = parse_offer(R"(permessage-deflate; server_max_window_bits="10"; client_max_window_bits="1\2")");
        REQUIRE(p);
        CHECK(p.parameters->server_max_window_bits == 10);
        CHECK(p.parameters->client_max_window_bits == 12);
    }
    SUBCASE("optional whitespace around separators, and names in any case") {
        p = parse_offer("PerMessage-Deflate ;\tServer_Max_Window_Bits = 11 ;CLIENT_NO_CONTEXT_TAKEOVER");
        REQUIRE(p);
        CHECK(p.parameters->server_max_window_bits == 11);
        CHECK(p.parameters->client_no_context_takeover);
    }
}

TEST_CASE("parsing: what RFC 7692 §7.1 does not allow") {
    const char* invalid[] = {
        // Unknown parameters, including ones from other compression extensions.
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; max_window_bits=10",
        // Every parameter twice.
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; Server_No_Context_Takeover; server_no_context_takeover",
        // Window sizes outside 8–15, not decimal, with leading zeros or signs, or missing.
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; server_max_window_bits=9.0",
        "permessage-deflate; server_max_window_bits=999999999999999999999",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=\"7\"",
        "permessage-deflate; server_max_window_bits=\"16\"",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\" 9\"",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=\"abc\"",
        // The no-context-takeover parameters take no value, not even an empty or quoted one.
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=\"\"",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        // Broken syntax.
        "permessage-deflate;",
        "permessage-deflate;; server_no_context_takeover",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"1\\",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits==10",
        "permessage-deflate; server_max_window_bits=1\"0\"",
    };
    for (const char* element : invalid) {
        INFO(element);
        const auto offer = parse_offer(element);
        CHECK_FALSE(offer);
        CHECK_FALSE(offer.error.empty());
        CHECK_FALSE(parse_response(element));
    }
    CHECK(parse_offer("permessage-deflate; foo").error == "unknown parameter 'foo'");
    CHECK(parse_offer("permessage-deflate; server_max_window_bits=16").error ==
          "invalid value 16 of 'server_max_window_bits'");
    CHECK(parse_offer("permessage-deflate; server_no_context_takeover; server_no_context_takeover").error ==
          "duplicate parameter 'server_no_context_takeover'");
}

TEST_CASE("server: every combination of offer parameters and server options") {
    const std::vector<std::optional<int>> client_window_forms = [] {
        auto forms = optional_window_sizes();
        forms.emplace_back(deflate::parameters::no_value);
        return forms;
    }();
    int combinations = 0;
    for (bool offer_sncto : {false, true})
        for (bool offer_cncto : {false, true})
            for (auto offer_smwb : optional_window_sizes())
                for (auto offer_cmwb : client_window_forms)
                    for (int server_pref : {8, 12, 15})
                        for (int client_pref : {9, 15})
                            for (bool disable_sct : {false, true})
                                for (bool disable_cct : {false, true}) {
                                    deflate::parameters offer{offer_sncto, offer_cncto, offer_smwb, offer_cmwb};
                                    const deflate::options ours{server_pref, client_pref, disable_sct, disable_cct};
                                    const auto element = element_of(offer);
                                    INFO(element, " against server ", server_pref, "/", client_pref, "/", disable_sct, "/",
                                         disable_cct);
                                    const auto a = select(element, ours);
                                    REQUIRE(a);
                                    const auto& n = a->parameters;
                                    CHECK(n.server_max_window_bits == std::min(offer_smwb.value_or(15), server_pref));
                                    const int hint = offer_cmwb && *offer_cmwb != 0 ? *offer_cmwb : 15;
                                    CHECK(n.client_max_window_bits == (offer_cmwb ? std::min(hint, client_pref) : 15));
                                    CHECK(n.server_no_context_takeover == (offer_sncto || disable_sct));
                                    CHECK(n.client_no_context_takeover == (offer_cncto || disable_cct));

                                    // The response is a valid response that says exactly what was agreed, and
                                    // answers what the offer asked (§7.1.1.1, §7.1.2.1, §7.1.2.2).
                                    const auto response = parse_response(a->response);
                                    REQUIRE(response);
                                    const auto& r = *response.parameters;
                                    CHECK(r.server_no_context_takeover == n.server_no_context_takeover);
                                    CHECK(r.client_no_context_takeover == n.client_no_context_takeover);
                                    CHECK(r.server_max_window_bits.value_or(15) == n.server_max_window_bits);
                                    if (offer_smwb) CHECK(r.server_max_window_bits.has_value());
                                    if (!offer_cmwb) CHECK_FALSE(r.client_max_window_bits.has_value());
                                    CHECK(std::min(r.client_max_window_bits.value_or(15), hint) == n.client_max_window_bits);
                                    ++combinations;
                                }
    CHECK(combinations == 2 * 2 * 9 * 10 * 3 * 2 * 2 * 2);
}

TEST_CASE("server: responses for typical offers") {
    CHECK(select("permessage-deflate")->response == "permessage-deflate");
    CHECK(select("permessage-deflate; client_max_window_bits")->response == "permessage-deflate");
    CHECK(select("permessage-deflate; client_max_window_bits", {15, 10})->response ==
          "permessage-deflate; client_max_window_bits=10");
    CHECK(select("permessage-deflate", {15, 10})->response == "permessage-deflate");  // cannot limit the client
    CHECK(select("permessage-deflate; server_max_window_bits=15")->response ==
          "permessage-deflate; server_max_window_bits=15");
    CHECK(select("permessage-deflate; server_max_window_bits=8")->response ==
          "permessage-deflate; server_max_window_bits=8");
    CHECK(select("permessage-deflate", {.server_max_window_bits = 8, .disable_server_context_takeover = true})->response ==
          "permessage-deflate; server_no_context_takeover; server_max_window_bits=8");
    CHECK(select("permessage-deflate; client_no_context_takeover")->response ==
          "permessage-deflate; client_no_context_takeover");
    // What Chrome and Firefox offer.
    const auto browser = select("permessage-deflate; client_max_window_bits", {.server_max_window_bits = 12});
    CHECK(browser->response == "permessage-deflate; server_max_window_bits=12");
    CHECK(browser->parameters == deflate::negotiated{12, 15, false, false});
}

TEST_CASE("server: of several offers the first acceptable one wins") {
    // Invalid offers are declined one by one (RFC 7692 §5.1), and the next is considered.
    auto a = select("permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, "
                    "permessage-deflate; server_max_window_bits=10, permessage-deflate");
    REQUIRE(a);
    CHECK(a->parameters.server_max_window_bits == 10);
    CHECK(a->response == "permessage-deflate; server_max_window_bits=10");

    // The first valid offer wins even when a later one would suit us better.
    a = select("permessage-deflate; server_no_context_takeover, permessage-deflate", {});
    REQUIRE(a);
    CHECK(a->parameters.server_no_context_takeover);

    // Other extensions are ignored; a quoted comma does not split an element.
    a = select(R"(x-webkit-deflate-frame, permessage-deflate; x="a, b", foo; bar="permessage-deflate, baz", )"
               "permessage-deflate; client_no_context_takeover");
    REQUIRE(a);
    CHECK(a->response == "permessage-deflate; client_no_context_takeover");

    // Offers spread over several header lines count in order.
    duplex::http::headers h;
    h.add("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=99");
    h.add("sec-websocket-extensions", "permessage-deflate; server_max_window_bits=9, permessage-deflate");
    a = deflate::select_offer(h, {});
    REQUIRE(a);
    CHECK(a->parameters.server_max_window_bits == 9);

    // Nothing acceptable, or nothing offered: no compression and no response header.
    CHECK_FALSE(select("permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits=16"));
    CHECK_FALSE(select("x-webkit-deflate-frame"));
    CHECK_FALSE(deflate::select_offer(duplex::http::headers{}, {}));
}

TEST_CASE("client: the offer, and validating the server's answer") {
    CHECK(deflate::make_offer({}) == "permessage-deflate; client_max_window_bits");
    CHECK(deflate::make_offer({.server_max_window_bits = 10, .client_max_window_bits = 12,
                               .disable_server_context_takeover = true, .disable_client_context_takeover = true}) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
          "client_max_window_bits=12");

    SUBCASE("no answer: the server declined, which is fine") {
        const auto check = validate("");
        CHECK(check);
        CHECK_FALSE(check.parameters);
    }
    SUBCASE("what a server may add on its own") {
        auto check = validate("permessage-deflate; server_no_context_takeover; server_max_window_bits=9");
        REQUIRE(check);
        CHECK(*check.parameters == deflate::negotiated{9, 15, true, false});
        check = validate("permessage-deflate; client_no_context_takeover; client_max_window_bits=8");
        REQUIRE(check);
        CHECK(*check.parameters == deflate::negotiated{15, 8, false, true});
    }
    SUBCASE("a client hint stays in force even when the server answers a larger window") {
        const auto check = validate("permessage-deflate; client_max_window_bits=14", {.client_max_window_bits = 10});
        REQUIRE(check);
        CHECK(check.parameters->client_max_window_bits == 10);
    }
    SUBCASE("our own no-context-takeover holds whether or not the server echoes it") {
        const auto check = validate("permessage-deflate", {.disable_client_context_takeover = true});
        REQUIRE(check);
        CHECK(check.parameters->client_no_context_takeover);
    }
    SUBCASE("answers that fail the connection (RFC 7692 §5.2)") {
        const std::pair<const char*, deflate::options> failing[] = {
            {"x-webkit-deflate-frame", {}},
            {"permessage-deflate, x-foo", {}},
            {"permessage-deflate, permessage-deflate", {}},
            {"permessage-deflate; foo", {}},
            {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", {}},
            {"permessage-deflate; server_max_window_bits=7", {}},
            {"permessage-deflate; server_max_window_bits=16", {}},
            {"permessage-deflate; server_max_window_bits=abc", {}},
            {"permessage-deflate; server_max_window_bits", {}},
            {"permessage-deflate; client_max_window_bits", {}},  // a response must give a value
            {"permessage-deflate; client_max_window_bits=16", {}},
            {"permessage-deflate; client_no_context_takeover=1", {}},
            {"permessage-deflate; server_max_window_bits=11", {.server_max_window_bits = 10}},  // larger than asked
            {"permessage-deflate", {.server_max_window_bits = 10}},                              // ignored the request
            {"permessage-deflate", {.disable_server_context_takeover = true}},                   // ignored the request
            {"permessage-deflate; server_max_window_bits=10; foo", {.server_max_window_bits = 10}},
        };
        for (const auto& [value, ours] : failing) {
            const std::string_view shown = value;
            INFO(shown);
            const auto check = validate(value, ours);
            CHECK_FALSE(check);
            CHECK_FALSE(check.parameters);
            CHECK_FALSE(check.error.empty());
        }
        CHECK(validate("x-foo").error == "server accepted an extension that was not offered: x-foo");
    }
}

TEST_CASE("client and server agree on the same parameters for every combination of options") {
    int combinations = 0;
    for (int c_smwb = 8; c_smwb <= 15; ++c_smwb)
        for (int c_cmwb = 8; c_cmwb <= 15; ++c_cmwb)
            for (int s_smwb = 8; s_smwb <= 15; ++s_smwb)
                for (int s_cmwb = 8; s_cmwb <= 15; ++s_cmwb)
                    for (int flags = 0; flags < 16; ++flags) {
                        const deflate::options client{c_smwb, c_cmwb, (flags & 1) != 0, (flags & 2) != 0};
                        const deflate::options server{s_smwb, s_cmwb, (flags & 4) != 0, (flags & 8) != 0};
                        const auto offer = deflate::make_offer(client);
                        const auto a = select(offer, server);
                        REQUIRE(a);
                        const auto check = validate(a->response, client);
                        REQUIRE_MESSAGE(check, offer, " -> ", a->response, ": ", check.error);
                        REQUIRE(check.parameters == a->parameters);
                        const auto& n = a->parameters;
                        // Each side's wishes for its own direction and the other's are honoured.
                        CHECK(n.server_max_window_bits == std::min(c_smwb, s_smwb));
                        CHECK(n.client_max_window_bits == std::min(c_cmwb, s_cmwb));
                        CHECK(n.server_no_context_takeover == ((flags & 1) || (flags & 4)));
                        CHECK(n.client_no_context_takeover == ((flags & 2) || (flags & 8)));
                        ++combinations;
                    }
    CHECK(combinations == 8 * 8 * 8 * 8 * 16);
}

TEST_CASE("options outside 8–15 are refused") {
    CHECK_THROWS_AS(deflate::make_offer({.server_max_window_bits = 7}), std::invalid_argument);
    CHECK_THROWS_AS(deflate::make_offer({.client_max_window_bits = 16}), std::invalid_argument);
    CHECK_THROWS_AS(select("permessage-deflate", {.server_max_window_bits = 16}), std::invalid_argument);
    CHECK_THROWS_AS(validate("permessage-deflate", {.client_max_window_bits = 0}), std::invalid_argument);
}
