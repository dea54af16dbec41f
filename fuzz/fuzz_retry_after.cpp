// Fuzzes the Retry-After parser (zoom/retry_after.hpp) with the input as the header value, at two
// receiving times: one on a whole second and one just before the next.
//
// Besides the sanitizers, each input is checked against what the header promises:
// - a result is never before `now` nor after now + max_retry_after;
// - delta-seconds (digits only, after trimming spaces and tabs) give now + min(n, 24 h);
// - the two strict everyday forms, "2026-11-29T23:00:00Z" and "Sun, 29 Nov 2026 23:00:00 GMT", give
//   the time they name (clamped as above) when it is a real date, and nothing when it is not; the
//   times are computed here with <chrono>, independently of the parser. Years before 1900 are left
//   out: the parser refuses them (nothing) where the header's "a time in the past gives now" would
//   give now, and either is a safe answer.
#include "zoom/retry_after.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace {

using namespace token_broker;
namespace chrono = std::chrono;
using chrono::system_clock;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_retry_after: broken promise: %s\n", what);
        std::abort();
    }
}

std::string_view trim(std::string_view s) {
    const std::size_t first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

bool digit_at(std::string_view s, std::size_t i) {
    return s[i] >= '0' && s[i] <= '9';
}

// The number written with the `n` digits at `s[i]`; the caller has checked they are digits.
int number_at(std::string_view s, std::size_t i, std::size_t n) {
    int v = 0;
    for (std::size_t k = 0; k < n; ++k)
        v = v * 10 + (s[i + k] - '0');
    return v;
}

bool matches(std::string_view s, std::string_view shape) {
    if (s.size() != shape.size())
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (shape[i] == 'd' ? !digit_at(s, i) : s[i] != shape[i])
            return false;
    }
    return true;
}

struct named_time {
    bool recognised = false;               // the value has one of the two strict shapes
    std::optional<chrono::sys_seconds> at; // the time it names, when that is a real date
};

std::optional<chrono::sys_seconds> civil(int y, int mo, int d, int h, int mi, int s) {
    const chrono::year_month_day ymd{chrono::year{y}, chrono::month{static_cast<unsigned>(mo)},
                                     chrono::day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || s > 60)
        return std::nullopt;
    return chrono::sys_days{ymd} + chrono::hours{h} + chrono::minutes{mi} + chrono::seconds{s};
}

named_time strict_time(std::string_view v) {
    named_time t;
    if (matches(v, "dddd-dd-ddTdd:dd:ddZ")) {
        t.recognised = number_at(v, 0, 4) >= 1900;
        t.at = civil(number_at(v, 0, 4), number_at(v, 5, 2), number_at(v, 8, 2), number_at(v, 11, 2),
                     number_at(v, 14, 2), number_at(v, 17, 2));
        return t;
    }
    static constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static constexpr std::array<std::string_view, 7> days = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    if (v.size() != 29 || std::find(days.begin(), days.end(), v.substr(0, 3)) == days.end() ||
        !matches(v.substr(3, 5), ", dd ") || !matches(v.substr(11), " dddd dd:dd:dd GMT"))
        return t;
    const auto month = std::find(months.begin(), months.end(), v.substr(8, 3));
    if (month == months.end())
        return t;
    t.recognised = number_at(v, 12, 4) >= 1900;
    t.at = civil(number_at(v, 12, 4), static_cast<int>(month - months.begin()) + 1, number_at(v, 5, 2),
                 number_at(v, 17, 2), number_at(v, 20, 2), number_at(v, 23, 2));
    return t;
}

void check(std::string_view value, system_clock::time_point now) {
    const std::optional<system_clock::time_point> until = parse_retry_after(value, now);
    const system_clock::time_point latest = now + max_retry_after;
    if (until)
        require(*until >= now && *until <= latest, "a result within [now, now + max_retry_after]");

    const std::string_view v = trim(value);
    if (!v.empty() && v.find_first_not_of("0123456789") == std::string_view::npos) {
        // Saturating, as a count of seconds cannot usefully exceed the cap.
        std::int64_t seconds = 0;
        for (char c : v)
            seconds = std::min<std::int64_t>(seconds * 10 + (c - '0'), 24 * 3600);
        require(until == now + chrono::seconds(seconds), "delta-seconds give now + min(n, 24 h)");
        return;
    }

    const named_time named = strict_time(v);
    if (!named.recognised)
        return;
    if (!named.at) {
        require(!until, "an impossible date gives nothing");
        return;
    }
    const auto now_s = chrono::floor<chrono::seconds>(now);
    system_clock::time_point expected;
    if (*named.at - now_s > max_retry_after)
        expected = latest;
    else
        expected = std::max(now, system_clock::time_point(*named.at));
    require(until == expected, "a strict date gives the time it names, clamped");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view value(reinterpret_cast<const char*>(data), size);
    // 2026-11-29T23:00:00Z, exactly and one nanosecond-tick before the next second.
    const system_clock::time_point now{chrono::seconds(1'795'993'200)};
    check(value, now);
    check(value, now + chrono::seconds(1) - system_clock::duration(1));
    return 0;
}
