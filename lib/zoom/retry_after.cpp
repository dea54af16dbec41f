#include "zoom/retry_after.hpp"

#include <array>
#include <cstdint>

namespace token_broker {
namespace {

using std::chrono::system_clock;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

char to_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (to_lower(a[i]) != to_lower(b[i]))
            return false;
    return true;
}

// A cursor over the header value; every read checks bounds.
class cursor {
public:
    explicit cursor(std::string_view s) : s_(s) {}

    bool done() const { return pos_ >= s_.size(); }
    char peek() const { return done() ? '\0' : s_[pos_]; }

    bool eat(char c) {
        if (peek() != c || done())
            return false;
        ++pos_;
        return true;
    }

    // Exactly `n` digits.
    bool digits(std::size_t n, int& out) {
        int v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (done() || !is_digit(s_[pos_]))
                return false;
            v = v * 10 + (s_[pos_++] - '0');
        }
        out = v;
        return true;
    }

    // One or two digits (asctime's day of month may be space-padded: handled by the caller).
    bool one_or_two_digits(int& out) {
        if (!digits(1, out))
            return false;
        int second = 0;
        if (!done() && is_digit(s_[pos_]) && digits(1, second))
            out = out * 10 + second;
        return true;
    }

    // Letters up to the next non-letter.
    std::string_view word() {
        std::size_t start = pos_;
        while (!done() && ((s_[pos_] >= 'a' && s_[pos_] <= 'z') || (s_[pos_] >= 'A' && s_[pos_] <= 'Z')))
            ++pos_;
        return s_.substr(start, pos_ - start);
    }

    void skip_spaces() {
        while (!done() && s_[pos_] == ' ')
            ++pos_;
    }

private:
    std::string_view s_;
    std::size_t pos_ = 0;
};

struct civil_time {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// Whole seconds, so that years far beyond system_clock's nanosecond range cannot overflow.
using sys_seconds = std::chrono::sys_seconds;

std::optional<sys_seconds> to_time_point(const civil_time& t, std::chrono::seconds offset = {}) {
    using namespace std::chrono;
    if (t.year < 1900 || t.year > 9999 || t.hour > 23 || t.minute > 59 || t.second > 60)
        return std::nullopt;
    const year_month_day ymd{year{t.year}, month{static_cast<unsigned>(t.month)},
                             day{static_cast<unsigned>(t.day)}};
    if (!ymd.ok())
        return std::nullopt;
    // A leap second (:60) is taken as the next second.
    const seconds since_midnight = hours{t.hour} + minutes{t.minute} + seconds{t.second};
    return sys_seconds{sys_days{ymd}} + since_midnight - offset;
}

std::optional<int> month_number(std::string_view name) {
    static constexpr std::array<std::string_view, 12> names = {"jan", "feb", "mar", "apr", "may", "jun",
                                                               "jul", "aug", "sep", "oct", "nov", "dec"};
    for (std::size_t i = 0; i < names.size(); ++i)
        if (iequals(name, names[i]))
            return static_cast<int>(i) + 1;
    return std::nullopt;
}

bool is_day_name(std::string_view name, bool long_form) {
    static constexpr std::array<std::string_view, 7> short_names = {"mon", "tue", "wed", "thu",
                                                                    "fri", "sat", "sun"};
    static constexpr std::array<std::string_view, 7> long_names = {
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
    for (auto n : long_form ? long_names : short_names)
        if (iequals(name, n))
            return true;
    return false;
}

// "08:49:37"
bool clock_time(cursor& c, civil_time& t) {
    return c.digits(2, t.hour) && c.eat(':') && c.digits(2, t.minute) && c.eat(':') && c.digits(2, t.second);
}

bool gmt(cursor& c) {
    return iequals(c.word(), "GMT");
}

// "Sun, 06 Nov 1994 08:49:37 GMT" or "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<sys_seconds> parse_rfc1123_or_850(cursor c) {
    const auto day_name = c.word();
    if (!c.eat(',') || !c.eat(' '))
        return std::nullopt;
    civil_time t;
    if (is_day_name(day_name, false)) {
        std::optional<int> month;
        if (!c.digits(2, t.day) || !c.eat(' ') || !(month = month_number(c.word())) || !c.eat(' ') ||
            !c.digits(4, t.year) || !c.eat(' ') || !clock_time(c, t) || !c.eat(' ') || !gmt(c) || !c.done())
            return std::nullopt;
        t.month = *month;
        return to_time_point(t);
    }
    if (is_day_name(day_name, true)) {
        std::optional<int> month;
        int yy = 0;
        if (!c.digits(2, t.day) || !c.eat('-') || !(month = month_number(c.word())) || !c.eat('-') ||
            !c.digits(2, yy) || !c.eat(' ') || !clock_time(c, t) || !c.eat(' ') || !gmt(c) || !c.done())
            return std::nullopt;
        t.month = *month;
        t.year = yy < 70 ? 2000 + yy : 1900 + yy;
        return to_time_point(t);
    }
    return std::nullopt;
}

// "Sun Nov  6 08:49:37 1994"
std::optional<sys_seconds> parse_asctime(cursor c) {
    if (!is_day_name(c.word(), false) || !c.eat(' '))
        return std::nullopt;
    civil_time t;
    const auto month = month_number(c.word());
    if (!month || !c.eat(' '))
        return std::nullopt;
    t.month = *month;
    c.eat(' '); // a day of month below 10 is padded with a space
    if (!c.one_or_two_digits(t.day) || !c.eat(' ') || !clock_time(c, t) || !c.eat(' ') ||
        !c.digits(4, t.year) || !c.done())
        return std::nullopt;
    return to_time_point(t);
}

// "2020-05-31T00:00:00Z", "2020-05-31T00:00:00.123+02:00", "2020-05-31 00:00:00"
std::optional<sys_seconds> parse_iso8601(cursor c) {
    civil_time t;
    if (!c.digits(4, t.year) || !c.eat('-') || !c.digits(2, t.month) || !c.eat('-') || !c.digits(2, t.day))
        return std::nullopt;
    if (!(c.eat('T') || c.eat('t') || c.eat(' ')))
        return std::nullopt;
    if (!clock_time(c, t))
        return std::nullopt;
    bool fraction = false;
    if (c.eat('.') || c.eat(',')) {
        int digit = 0;
        if (!c.digits(1, digit))
            return std::nullopt;
        fraction = digit != 0;
        while (is_digit(c.peek())) {
            c.digits(1, digit);
            fraction = fraction || digit != 0;
        }
    }
    std::chrono::seconds offset{0};
    if (c.eat('Z') || c.eat('z')) {
        // UTC
    } else if (c.peek() == '+' || c.peek() == '-') {
        const bool negative = c.peek() == '-';
        c.eat(c.peek());
        int hh = 0, mm = 0;
        if (!c.digits(2, hh))
            return std::nullopt;
        if (c.eat(':')) {
            if (!c.digits(2, mm))
                return std::nullopt;
        } else if (is_digit(c.peek()) && !c.digits(2, mm)) {
            return std::nullopt;
        }
        if (hh > 23 || mm > 59)
            return std::nullopt;
        offset = std::chrono::hours{hh} + std::chrono::minutes{mm};
        if (negative)
            offset = -offset;
    }
    if (!c.done())
        return std::nullopt;
    auto tp = to_time_point(t, offset);
    // A fraction of a second still has to pass: round up so the caller never comes back early.
    if (tp && fraction)
        *tp += std::chrono::seconds{1};
    return tp;
}

// The wait from `now` until `at`, clamped to [0, max_retry_after].
system_clock::duration wait_until(sys_seconds at, system_clock::time_point now) {
    using namespace std::chrono;
    const auto now_s = floor<seconds>(now);
    if (at - now_s > max_retry_after)
        return duration_cast<system_clock::duration>(max_retry_after);
    const auto wait = duration_cast<system_clock::duration>(at - now_s) - (now - now_s);
    return wait < system_clock::duration::zero() ? system_clock::duration::zero() : wait;
}

std::optional<system_clock::duration> parse_delta_seconds(std::string_view s) {
    constexpr auto cap = std::chrono::duration_cast<std::chrono::seconds>(max_retry_after).count();
    std::int64_t v = 0;
    for (char ch : s) {
        if (!is_digit(ch))
            return std::nullopt;
        v = v * 10 + (ch - '0');
        if (v > cap)
            v = cap; // saturates: no overflow however many digits
    }
    return std::chrono::seconds{v};
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

} // namespace

std::optional<system_clock::time_point> parse_retry_after(std::string_view value,
                                                          system_clock::time_point now) noexcept {
    value = trim(value);
    if (value.empty())
        return std::nullopt;
    std::optional<system_clock::duration> wait;
    if (value.find_first_not_of("0123456789") == std::string_view::npos) {
        wait = parse_delta_seconds(value);
    } else {
        std::optional<sys_seconds> at;
        if (is_digit(value.front()))
            at = parse_iso8601(cursor{value});
        else if (value.find(',') != std::string_view::npos)
            at = parse_rfc1123_or_850(cursor{value});
        else
            at = parse_asctime(cursor{value});
        if (at)
            wait = wait_until(*at, now);
    }
    if (!wait)
        return std::nullopt;
    return now + *wait;
}

} // namespace token_broker
