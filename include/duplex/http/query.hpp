// The query of a request target, ASP.NET's Request.Query: the text as sent (raw()), and its parameters
// decoded as application/x-www-form-urlencoded, the way browsers write forms and URLSearchParams:
// "&" separates parameters, the first "=" splits name from value, "+" is a space and %XX a byte. A
// malformed escape ("%zz", a "%" at the end) stays as written, as URLSearchParams leaves it. Names
// match without regard to ASCII case, as in ASP.NET.
//
//   ?room=lobby&name=Ada+L%C3%A9&tag=a&tag=b
//   query("room") == "lobby", query("name") == "Ada Lé", query.all("tag") == {"a", "b"},
//   query("missing") == std::nullopt; "?flag" gives query("flag") == "".
#pragma once

#include <duplex/http/detail/ascii.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace duplex::http {

// Decodes one name or value of a form-encoded query.
inline std::string decode_query_component(std::string_view text) {
    using detail::hex_value;
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

class query_collection {
public:
    struct parameter {
        std::string name, value;
    };

    // Walks the parameters in order, decoding each as it gets there. Empty pieces ("a=1&&b=2") are
    // skipped.
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = parameter;
        using difference_type = std::ptrdiff_t;
        using pointer = const parameter*;
        using reference = const parameter&;

        iterator() = default;  // the end
        explicit iterator(std::string_view text) : rest_(text) { advance(); }

        reference operator*() const noexcept { return current_; }
        pointer operator->() const noexcept { return &current_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        iterator operator++(int) {
            auto before = *this;
            advance();
            return before;
        }
        // Two iterators over the same query are equal when both are at its end, or both stand after the
        // same piece of it.
        friend bool operator==(const iterator& a, const iterator& b) noexcept {
            return a.at_end_ == b.at_end_ && (a.at_end_ || a.rest_.data() == b.rest_.data());
        }

    private:
        void advance() {
            while (!rest_.empty() && rest_.front() == '&') rest_.remove_prefix(1);
            at_end_ = rest_.empty();
            if (at_end_) return;
            const auto piece = rest_.substr(0, rest_.find('&'));
            rest_.remove_prefix(piece.size());
            const auto equals = piece.find('=');
            current_.name = decode_query_component(piece.substr(0, equals));
            current_.value =
                equals == std::string_view::npos ? std::string{} : decode_query_component(piece.substr(equals + 1));
        }

        std::string_view rest_;  // what follows the current parameter
        parameter current_;
        bool at_end_ = true;
    };

    query_collection() = default;
    explicit query_collection(std::string raw) : raw_(std::move(raw)) {}

    // The query as sent, without the '?'.
    const std::string& raw() const noexcept { return raw_; }
    bool empty() const noexcept { return raw_.empty(); }
    void assign(std::string_view raw) { raw_.assign(raw); }
    void clear() noexcept { raw_.clear(); }

    // The first value of `name`; std::nullopt when the query has no such parameter.
    std::optional<std::string> operator()(std::string_view name) const {
        for (const auto& p : *this)
            if (detail::iequals(p.name, name)) return p.value;
        return std::nullopt;
    }
    std::optional<std::string> get(std::string_view name) const { return (*this)(name); }
    bool contains(std::string_view name) const { return get(name).has_value(); }

    // Every value of `name`, in order (a key repeated: ?tag=a&tag=b).
    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> values;
        for (const auto& p : *this)
            if (detail::iequals(p.name, name)) values.push_back(p.value);
        return values;
    }

    iterator begin() const { return iterator(raw_); }
    iterator end() const { return iterator(); }

private:
    std::string raw_;
};

}  // namespace duplex::http
