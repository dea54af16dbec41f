#include "server/message.hpp"

#include "core/digest.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <ctime>
#include <random>

namespace token_broker {

void set_error(response& out, const broker_error& e) {
    out.status = http_status(e.code);
    out.content_type = "application/json";
    boost::json::object error{{"code", code_name(e.code)}, {"message", e.message}};
    if (e.zoom_code)
        error["zoom_code"] = *e.zoom_code;
    out.body = boost::json::serialize(boost::json::object{{"error", std::move(error)}});
    if (e.code == errc::unauthorized)
        out.www_authenticate = true;
    if (e.code == errc::rate_limited)
        out.retry_after = e.retry_after ? std::max<long long>(1, e.retry_after->count()) : 1;
    if (e.code == errc::headers_too_large || e.code == errc::body_too_large)
        out.close = true;
}

void set_error(response& out, errc code, std::string_view message) {
    set_error(out, make_error(code, std::string(message)));
}

namespace {

// The Date header's value, formatted once a second per thread.
std::string_view http_date() {
    thread_local std::time_t cached_second = 0;
    thread_local char text[64];
    thread_local std::size_t length = 0;
    const std::time_t now = std::time(nullptr);
    if (now != cached_second) {
        cached_second = now;
        auto end = fmt::format_to_n(text, sizeof text - 1, "{:%a, %d %b %Y %H:%M:%S} GMT", fmt::gmtime(now));
        length = end.size;
    }
    return {text, length};
}

} // namespace

namespace {

void append_number(std::string& out, long long n) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, end);
}

} // namespace

// Plain appends rather than fmt: this runs for every answer, and appending a few known pieces is
// several times cheaper than formatting them.
void serialize_response(const request& req, const response& res, std::string& out) {
    const auto reason = http::obsolete_reason(static_cast<http::status>(res.status));
    out.append("HTTP/1.1 ");
    append_number(out, res.status);
    out.push_back(' ');
    out.append(reason.data(), reason.size());
    out.append("\r\nDate: ");
    out.append(http_date());
    // A 204 has neither a body nor the headers describing one (RFC 9110 8.6).
    if (res.status != 204) {
        out.append("\r\nContent-Type: ");
        out.append(res.content_type);
        out.append("\r\nContent-Length: ");
        append_number(out, static_cast<long long>(res.body.size()));
    }
    out.append("\r\nCache-Control: no-store\r\nX-Request-Id: ");
    out.append(req.request_id);
    out.append("\r\n");
    if (!res.allow.empty()) {
        out.append("Allow: ");
        out.append(res.allow);
        out.append("\r\n");
    }
    if (res.www_authenticate)
        out.append("WWW-Authenticate: Bearer\r\n");
    if (res.retry_after) {
        out.append("Retry-After: ");
        append_number(out, *res.retry_after);
        out.append("\r\n");
    }
    if (res.close || !req.keep_alive)
        out.append("Connection: close\r\n");
    else if (req.version == 10)
        out.append("Connection: keep-alive\r\n");
    out.append("\r\n");
    // An answer to HEAD has the headers, Content-Length included, that GET would have, and no body.
    if (res.status != 204 && req.method != http::verb::head)
        out.append(res.body);
}

bool is_sane_request_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128)
        return false;
    for (unsigned char c : id)
        if (c < 0x21 || c > 0x7e)
            return false;
    return true;
}

void make_request_id(std::string& out) {
    static const std::uint64_t process_salt = [] {
        std::random_device rd;
        return (std::uint64_t(rd()) << 32) ^ rd();
    }();
    static std::atomic<std::uint64_t> counter{0};
    // A bijective mix of salt and counter: unique within the process, scattered across processes.
    std::uint64_t x = process_salt + counter.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    out.resize(16);
    write_hex16(out.data(), x);
}

} // namespace token_broker
