// HTTP dates (RFC 9110 §5.6.7): written as IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), read in all
// three forms a recipient must accept (IMF-fixdate, RFC 850's "Sunday, 06-Nov-94 08:49:37 GMT" and
// asctime's "Sun Nov  6 08:49:37 1994"). Seconds since the Unix epoch, UTC.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace duplex::http {

namespace detail {

inline constexpr std::array<std::string_view, 7> week_days = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
inline constexpr std::array<std::string_view, 12> month_names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil_date {
    std::int64_t year;
    unsigned month, day;
};

constexpr civil_date civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

// A cursor over the date text; every reader fails (false) on a mismatch and then stays failed.
struct date_reader {
    std::string_view text;
    bool ok = true;

    bool literal(std::string_view expected) {
        ok = ok && text.starts_with(expected);
        if (ok) text.remove_prefix(expected.size());
        return ok;
    }
    // Exactly `digits` digits (a leading space stands for a zero in asctime's day).
    bool number(std::size_t digits, unsigned& out, bool space_padded = false) {
        out = 0;
        for (std::size_t i = 0; ok && i < digits; ++i) {
            const char c = i < text.size() ? text[i] : '\0';
            if (c >= '0' && c <= '9') out = out * 10 + static_cast<unsigned>(c - '0');
            else ok = space_padded && i == 0 && c == ' ';
        }
        if (ok) text.remove_prefix(digits);
        return ok;
    }
    bool month(unsigned& out) {
        for (unsigned m = 0; ok && m < month_names.size(); ++m)
            if (text.starts_with(month_names[m])) {
                text.remove_prefix(3);
                out = m + 1;
                return true;
            }
        return ok = false;
    }
    bool time_of_day(unsigned& h, unsigned& m, unsigned& s) {
        return number(2, h) && literal(":") && number(2, m) && literal(":") && number(2, s);
    }
    // A day name: the short one, or (RFC 850) the long one.
    bool day_name(bool long_form) {
        static constexpr std::array<std::string_view, 7> long_names = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                                       "Thursday", "Friday", "Saturday"};
        const auto& names = long_form ? long_names : week_days;
        for (const auto name : names)
            if (text.starts_with(name)) {
                text.remove_prefix(name.size());
                return true;
            }
        return ok = false;
    }
};

inline std::optional<std::int64_t> seconds_since_epoch(std::int64_t year, unsigned month, unsigned day, unsigned hour,
                                                       unsigned minute, unsigned second) {
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    if (civil_from_days(days_from_civil(year, month, day)).day != day) return std::nullopt;  // e.g. 31 Feb
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

}  // namespace detail

// IMF-fixdate of `seconds` since the epoch (UTC).
inline std::string format_http_date(std::int64_t seconds) {
    const std::int64_t days = (seconds >= 0 ? seconds : seconds - 86399) / 86400;
    const auto in_day = static_cast<unsigned>(seconds - days * 86400);
    const auto date = detail::civil_from_days(days);
    const auto weekday = static_cast<std::size_t>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
    const auto two = [](unsigned v) {
        return std::string{static_cast<char>('0' + v / 10), static_cast<char>('0' + v % 10)};
    };
    std::string out;
    out.reserve(29);
    out.append(detail::week_days[weekday]).append(", ").append(two(date.day)).append(" ");
    out.append(detail::month_names[date.month - 1]).append(" ").append(std::to_string(date.year)).append(" ");
    out.append(two(in_day / 3600)).append(":").append(two(in_day / 60 % 60)).append(":").append(two(in_day % 60));
    return out.append(" GMT");
}

// Seconds since the epoch of an HTTP-date in any of its three forms; nullopt for anything else.
// RFC 850's two-digit years are read as the years within the next 50 (RFC 9110 §5.6.7).
inline std::optional<std::int64_t> parse_http_date(std::string_view text) {
    unsigned day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
    if (text.size() > 3 && text[3] == ',') {  // IMF-fixdate
        detail::date_reader r{text};
        if (r.day_name(false) && r.literal(", ") && r.number(2, day) && r.literal(" ") && r.month(month) &&
            r.literal(" ") && r.number(4, year) && r.literal(" ") && r.time_of_day(hour, minute, second) &&
            r.literal(" GMT") && r.text.empty())
            return detail::seconds_since_epoch(year, month, day, hour, minute, second);
        return std::nullopt;
    }
    if (text.size() > 3 && text[3] == ' ') {  // asctime
        detail::date_reader r{text};
        if (r.day_name(false) && r.literal(" ") && r.month(month) && r.literal(" ") && r.number(2, day, true) &&
            r.literal(" ") && r.time_of_day(hour, minute, second) && r.literal(" ") && r.number(4, year) &&
            r.text.empty())
            return detail::seconds_since_epoch(year, month, day, hour, minute, second);
        return std::nullopt;
    }
    detail::date_reader r{text};  // RFC 850
    if (!(r.day_name(true) && r.literal(", ") && r.number(2, day) && r.literal("-") && r.month(month) &&
          r.literal("-") && r.number(2, year) && r.literal(" ") && r.time_of_day(hour, minute, second) &&
          r.literal(" GMT") && r.text.empty()))
        return std::nullopt;
    // "more than 50 years in the future" is read as the past: relative to this century's clock.
    std::int64_t full_year = 2000 + year;
    const auto now = detail::civil_from_days(static_cast<std::int64_t>(std::time(nullptr)) / 86400).year;
    if (full_year > now + 50) full_year -= 100;
    return detail::seconds_since_epoch(full_year, month, day, hour, minute, second);
}

}  // namespace duplex::http
