#include "cache/shared_tokens.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <limits>

namespace token_broker {
namespace {

using std::chrono::milliseconds;

std::int64_t to_ms(time_point t) {
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::optional<errc> errc_named(std::string_view name) {
    for (int i = 1; i <= static_cast<int>(last_errc); ++i)
        if (code_name(static_cast<errc>(i)) == name)
            return static_cast<errc>(i);
    return std::nullopt;
}

// A JSON integer that fits `T`, or nullopt.
template <class T>
std::optional<T> integer_at(const boost::json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    if (!v)
        return std::nullopt;
    const auto* i = v->if_int64();
    if (!i || *i < std::numeric_limits<T>::min() || *i > std::numeric_limits<T>::max())
        return std::nullopt;
    return static_cast<T>(*i);
}

const boost::json::string* string_at(const boost::json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    return v ? v->if_string() : nullptr;
}

// A time_point from milliseconds since the epoch, when it is one a real clock could read.
std::optional<time_point> time_at(const boost::json::object& o, std::string_view name) {
    constexpr std::int64_t max_ms = 253402300799000; // 9999-12-31T23:59:59Z
    auto ms = integer_at<std::int64_t>(o, name);
    if (!ms || *ms < 0 || *ms > max_ms)
        return std::nullopt;
    return time_point(std::chrono::duration_cast<time_point::duration>(milliseconds(*ms)));
}

} // namespace

std::string encode_shared_entry(const shared_entry& e) {
    boost::json::object o;
    switch (e.what) {
    case shared_entry::kind::token:
        o["kind"] = "token";
        o["token"] = e.token.reveal();
        o["fetched_at"] = to_ms(e.fetched_at);
        o["expires_at"] = to_ms(e.expires_at);
        break;
    case shared_entry::kind::unknown_user:
        o["kind"] = "unknown_user";
        break;
    case shared_entry::kind::error:
        o["kind"] = "error";
        o["code"] = code_name(e.error.code);
        o["message"] = e.error.message;
        if (e.error.zoom_code)
            o["zoom_code"] = *e.error.zoom_code;
        if (e.error.retry_after)
            o["retry_after"] = e.error.retry_after->count();
        o["asked_zoom"] = e.error.asked_zoom;
        o["fetch_id"] = e.fetch_id;
        break;
    }
    return boost::json::serialize(o);
}

std::optional<shared_entry> decode_shared_entry(std::string_view text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object())
        return std::nullopt;
    const auto& o = v.get_object();
    const auto* kind = string_at(o, "kind");
    if (!kind)
        return std::nullopt;
    shared_entry e;
    if (*kind == "token") {
        const auto* token = string_at(o, "token");
        auto fetched = time_at(o, "fetched_at");
        auto expires = time_at(o, "expires_at");
        if (!token || token->empty() || !fetched || !expires)
            return std::nullopt;
        e.what = shared_entry::kind::token;
        e.token = secret(std::string(*token));
        e.fetched_at = *fetched;
        e.expires_at = *expires;
    } else if (*kind == "unknown_user") {
        e.what = shared_entry::kind::unknown_user;
    } else if (*kind == "error") {
        const auto* code = string_at(o, "code");
        const auto* message = string_at(o, "message");
        const auto known = code ? errc_named(*code) : std::nullopt;
        if (!known || !message)
            return std::nullopt;
        e.what = shared_entry::kind::error;
        e.error = make_error(*known, std::string(*message));
        if (o.contains("zoom_code")) {
            e.error.zoom_code = integer_at<int>(o, "zoom_code");
            if (!e.error.zoom_code)
                return std::nullopt;
        }
        if (o.contains("retry_after")) {
            auto s = integer_at<std::int64_t>(o, "retry_after");
            if (!s || *s < 0)
                return std::nullopt;
            e.error.retry_after = std::chrono::seconds(*s);
        }
        if (const auto* asked = o.if_contains("asked_zoom"); asked && asked->is_bool())
            e.error.asked_zoom = asked->get_bool();
        if (const auto* id = string_at(o, "fetch_id"))
            e.fetch_id = std::string(*id);
    } else {
        return std::nullopt;
    }
    return e;
}

bool usable_shared_entry(const shared_entry& e, time_point now, std::chrono::seconds configured_margin,
                         bool for_refresh) noexcept {
    if (e.what != shared_entry::kind::token)
        return true;
    const auto margin = refresh_margin(e.fetched_at, e.expires_at, configured_margin);
    const auto serve_until = e.expires_at - margin;
    return now < (for_refresh ? serve_until - margin : serve_until);
}

std::chrono::milliseconds shared_token_lifetime(const shared_entry& e, time_point now,
                                                std::chrono::seconds configured_margin) noexcept {
    const auto until = e.expires_at - refresh_margin(e.fetched_at, e.expires_at, configured_margin);
    return std::chrono::floor<std::chrono::milliseconds>(until - now);
}

} // namespace token_broker
