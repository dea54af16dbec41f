#include "zoom/zoom_protocol.hpp"

#include "cache/jwt.hpp"
#include "core/base64.hpp"
#include "zoom/rate_limit_block.hpp"
#include "zoom/rate_limiter.hpp"
#include "zoom/retry_after.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <stdexcept>

namespace token_broker {

broker_error zoom_client_stopped() {
    return make_error(errc::not_ready, "the Zoom client is stopped");
}

namespace {

namespace urls = boost::urls;
namespace json = boost::json;

constexpr std::size_t max_logged_message = 300;

// A user id as one path segment. The dot segments "." and ".." have their dots encoded too, so
// that nothing on the way (the client, a proxy, Zoom) can take them for "this" or "the parent".
std::string encode_path_segment(std::string_view user_id) {
    constexpr urls::grammar::lut_chars no_dots = urls::unreserved_chars - '.';
    const bool only_dots = user_id.find_first_not_of('.') == std::string_view::npos;
    return urls::encode(user_id, only_dots ? no_dots : urls::unreserved_chars);
}

const json::object* parse_object(std::string_view body, json::value& storage) {
    boost::system::error_code ec;
    storage = json::parse(body, ec);
    return ec ? nullptr : storage.if_object();
}

broker_error with_zoom_code(errc code, std::string message, std::optional<int> zoom_code) {
    broker_error e = make_error(code, std::move(message));
    e.zoom_code = zoom_code;
    return e;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto secs = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(static_cast<std::time_t>(secs)));
}

token_answer read_ok_answer(std::string_view body, std::chrono::system_clock::time_point now) {
    token_answer a;
    a.access_token_accepted = true;
    json::value v;
    const auto* obj = parse_object(body, v);
    const auto* token = obj ? obj->if_contains("token") : nullptr;
    if (token && token->is_null()) {
        a.value = make_error(errc::token_unavailable,
                             "Zoom has no token of this type for the user (e.g. a Google or Facebook login)");
        return a;
    }
    if (!token || !token->is_string() || token->get_string().empty()) {
        // The body is not quoted: it might hold a token.
        a.value = make_error(errc::upstream_error, "Zoom answered 200 without the expected JSON token");
        return a;
    }
    const std::string_view text = token->get_string();
    if (const auto exp = jwt_expiry(text)) {
        const std::chrono::system_clock::time_point expires_at{std::chrono::seconds{*exp}};
        if (expires_at <= now) {
            a.what = token_answer::verdict::expired_token;
            a.value = make_error(errc::upstream_error,
                                 "Zoom's token had already expired when it arrived (exp " +
                                     rfc3339(expires_at) + ", the broker's clock " + rfc3339(now) +
                                     "): the clocks of Zoom and the broker may disagree");
            return a;
        }
    }
    a.what = token_answer::verdict::token;
    a.value = secret(std::string(text));
    return a;
}

} // namespace

endpoint_url parse_endpoint_url(const std::string& text, std::string_view key) {
    auto parsed = urls::parse_uri(text);
    if (!parsed || parsed->scheme_id() != urls::scheme::https || parsed->host_address().empty())
        throw std::invalid_argument(std::string(key) + ": must be an https URL");
    endpoint_url u;
    u.where.host = parsed->host_address();
    u.where.port = parsed->has_port() ? std::string(parsed->port()) : "443";
    u.path = parsed->encoded_path();
    while (!u.path.empty() && u.path.back() == '/')
        u.path.pop_back();
    if (parsed->has_query())
        u.query = parsed->encoded_query();
    return u;
}

std::string token_request_target(std::string_view api_path, const token_query& q) {
    urls::url u;
    u.set_encoded_path(std::string(api_path) + "/users/" + encode_path_segment(q.user_id) + "/token");
    u.params().append({"type", to_string(q.type)});
    if (q.ttl)
        u.params().append({"ttl", std::to_string(*q.ttl)});
    if (q.meeting_id)
        u.params().append({"meeting_id", *q.meeting_id});
    return std::string(u.encoded_target());
}

std::string basic_authorization(std::string_view user, std::string_view password) {
    return "Basic " + base64_encode(std::string(user) + ":" + std::string(password));
}

std::string printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, max_logged_message))
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
    if (text.size() > max_logged_message)
        out += "...";
    return out;
}

zoom_error_body parse_error_body(std::string_view body) {
    zoom_error_body e;
    json::value v;
    const auto* obj = parse_object(body, v);
    if (!obj)
        return e;
    auto text = [&](std::string_view key) {
        const auto* s = obj->if_contains(key);
        return s && s->is_string() ? printable(s->get_string()) : std::string();
    };
    if (const auto* c = obj->if_contains("code")) {
        if (c->is_int64() && c->get_int64() >= INT32_MIN && c->get_int64() <= INT32_MAX)
            e.code = static_cast<int>(c->get_int64());
        else if (c->is_uint64() && c->get_uint64() <= INT32_MAX)
            e.code = static_cast<int>(c->get_uint64());
    }
    e.message = text("message");
    e.error = text("error");
    e.reason = text("reason");
    return e;
}

std::string zoom_said(unsigned status, const zoom_error_body& e) {
    std::string s = e.message.empty() ? "HTTP " + std::to_string(status) : e.message;
    if (e.code)
        s += " (code " + std::to_string(*e.code) + ")";
    return s;
}

token_answer read_token_answer(unsigned status, std::string_view retry_after, std::string_view body,
                               std::chrono::system_clock::time_point now, unsigned attempts) {
    if (status == 200)
        return read_ok_answer(body, now);

    token_answer a;
    a.body = parse_error_body(body);
    const auto& b = a.body;
    if (status == 429) {
        a.what = token_answer::verdict::rate_limited;
        const auto until = parse_retry_after(retry_after, now);
        a.block = until ? *until - now : std::chrono::system_clock::duration{std::chrono::seconds{1}};
        if (a.block > max_rate_limit_block) {
            a.block = max_rate_limit_block;
            a.block_capped = true;
        }
        broker_error e = with_zoom_code(errc::rate_limited,
                                        "Zoom's rate limit was reached: " + zoom_said(status, b), b.code);
        e.retry_after =
            rate_limiter::retry_after(std::chrono::ceil<std::chrono::steady_clock::duration>(a.block));
        a.value = std::move(e);
        return a;
    }
    if (status >= 500 && status <= 599) {
        a.what = token_answer::verdict::server_error;
        a.value = with_zoom_code(errc::upstream_error,
                                 "Zoom failed: " + zoom_said(status, b) + " (after " +
                                     std::to_string(attempts) + (attempts == 1 ? " attempt)" : " attempts)"),
                                 b.code);
        return a;
    }
    if (status == 404) {
        a.access_token_accepted = true;
        a.value =
            with_zoom_code(errc::user_not_found, "Zoom: " + zoom_said(status, b), b.code.value_or(1001));
        return a;
    }
    if (status == 400) {
        a.access_token_accepted = true;
        a.value = with_zoom_code(errc::upstream_rejected,
                                 "Zoom rejected the request: " + zoom_said(status, b), b.code);
        return a;
    }
    if (b.code == 4711) {
        a.value = with_zoom_code(errc::upstream_error,
                                 "Zoom's access token lacks a scope needed for user tokens "
                                 "(user:read:token:admin or user:read:admin): " +
                                     zoom_said(status, b),
                                 b.code);
        return a;
    }
    if (status == 401) {
        if (b.code == 124)
            a.what = token_answer::verdict::access_token_rejected;
        a.value = with_zoom_code(errc::upstream_error,
                                 "Zoom rejected the access token: " + zoom_said(status, b), b.code);
        return a;
    }
    a.value =
        with_zoom_code(errc::upstream_error, "unexpected answer from Zoom: " + zoom_said(status, b), b.code);
    return a;
}

result<oauth_grant> read_oauth_answer(unsigned status, std::string_view body) {
    auto failed = [](std::string why) {
        return make_error(errc::not_ready, "Zoom OAuth failed: " + std::move(why));
    };
    if (status != 200) {
        const auto b = parse_error_body(body);
        if (!b.error.empty() || !b.reason.empty())
            return failed(b.error + (b.error.empty() || b.reason.empty() ? "" : ": ") + b.reason);
        return failed(zoom_said(status, b));
    }
    json::value v;
    const auto* obj = parse_object(body, v);
    const auto* token = obj ? obj->if_contains("access_token") : nullptr;
    const auto* expires = obj ? obj->if_contains("expires_in") : nullptr;
    std::int64_t expires_in = 0;
    if (expires && expires->is_int64())
        expires_in = expires->get_int64();
    else if (expires && expires->is_uint64())
        expires_in = static_cast<std::int64_t>(std::min<std::uint64_t>(expires->get_uint64(), INT32_MAX));
    else if (expires && expires->is_double() && expires->get_double() >= 1 &&
             expires->get_double() < INT32_MAX)
        expires_in = static_cast<std::int64_t>(expires->get_double());
    if (!token || !token->is_string() || token->get_string().empty() || expires_in <= 0)
        return failed("unexpected answer from the OAuth endpoint");
    return oauth_grant{secret(std::string(token->get_string())), std::chrono::seconds{expires_in}};
}

broker_error transport_failure_error(const transport_error& e, std::chrono::milliseconds request_timeout) {
    switch (e.kind) {
    case transport_failure::unreachable:
        return make_error(errc::upstream_unavailable, "cannot reach Zoom: " + e.message);
    case transport_failure::timeout:
        return make_error(errc::upstream_timeout, "no answer from Zoom within " +
                                                      std::to_string(request_timeout.count()) +
                                                      " ms: " + e.message);
    case transport_failure::tls:
        return make_error(errc::upstream_error, "TLS failure talking to Zoom: " + e.message);
    case transport_failure::closed:
    case transport_failure::protocol:
        return make_error(errc::upstream_error, "bad answer from Zoom: " + e.message);
    case transport_failure::cancelled:
        break;
    }
    return make_error(errc::not_ready, "the Zoom client is stopped");
}

std::string metric_code(const exchange_result& r) {
    if (r)
        return std::to_string(r->result_int());
    switch (r.error().kind) {
    case transport_failure::unreachable:
        return "unreachable";
    case transport_failure::timeout:
        return "timeout";
    case transport_failure::tls:
        return "tls_error";
    case transport_failure::closed:
    case transport_failure::protocol:
    case transport_failure::cancelled:
        break;
    }
    return "protocol_error";
}

} // namespace token_broker
