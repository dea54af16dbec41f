#include "server/token_request.hpp"

#include "core/target_path.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>

namespace token_broker {

std::string quoted_for_message(std::string_view text) {
    constexpr std::size_t max_quoted_bytes = 64;
    std::string out = "\"";
    for (char c : text.substr(0, max_quoted_bytes))
        out += (c >= 0x20 && c <= 0x7E) ? c : '?';
    out += text.size() > max_quoted_bytes ? "\"..." : "\"";
    return out;
}

broker_error invalid_request(std::string message) {
    return make_error(errc::invalid_request, std::move(message));
}

namespace {

constexpr std::string_view route_prefix = "/token/";

bool all_digits(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

enum class user_id_problem { none, empty, too_long, bad_character, dot_segment };

user_id_problem check_user_id(std::string_view id) noexcept {
    if (id.empty())
        return user_id_problem::empty;
    if (id.size() > max_user_id_bytes)
        return user_id_problem::too_long;
    if (id == "." || id == "..")
        return user_id_problem::dot_segment;
    for (char c : id) {
        if (c < 0x21 || c > 0x7E || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%')
            return user_id_problem::bad_character;
    }
    return user_id_problem::none;
}

std::string_view describe(user_id_problem p) noexcept {
    switch (p) {
    case user_id_problem::empty:
        return "the user id is missing: the path must be /token/{userId}";
    case user_id_problem::too_long:
        return "the user id is longer than 254 bytes";
    case user_id_problem::dot_segment:
        return "the user id cannot be \".\" or \"..\"";
    case user_id_problem::bad_character:
    case user_id_problem::none:
        break;
    }
    return "the user id, percent-decoded once, may only hold visible ASCII characters other than / \\ ? # "
           "and %";
}

// The query parameters the route knows, each given at most once.
struct raw_query {
    std::optional<std::string> type, ttl, meeting_id;
};

result<raw_query> read_query(const boost::urls::url_view& url) {
    raw_query q;
    for (const boost::urls::param p : url.params()) {
        if (p.key.empty())
            return invalid_request("the query has an empty parameter (a stray '&' or '=')");
        std::optional<std::string>* slot = p.key == "type"         ? &q.type
                                           : p.key == "ttl"        ? &q.ttl
                                           : p.key == "meeting_id" ? &q.meeting_id
                                                                   : nullptr;
        if (!slot)
            return invalid_request("unknown query parameter " + quoted_for_message(p.key) +
                                   "; the known ones are type, ttl and meeting_id");
        if (*slot)
            return invalid_request("query parameter " + p.key + " is given more than once");
        if (!p.has_value || p.value.empty())
            return invalid_request("query parameter " + p.key + " needs a value");
        *slot = p.value;
    }
    return q;
}

// The rules of type, ttl and meeting_id, given as text, applied to `query`, whose user id is valid.
result<token_query> apply_query_fields(token_query query, const std::optional<std::string>& type,
                                       const std::optional<std::string>& ttl,
                                       const std::optional<std::string>& meeting_id) {
    if (type) {
        const auto parsed = parse_token_type(*type);
        if (!parsed)
            return invalid_request("type must be zak, token or onbehalf, not " + quoted_for_message(*type));
        query.type = *parsed;
    }

    if (ttl) {
        if (query.type == token_type::token)
            return invalid_request("ttl is only allowed with type zak or onbehalf");
        const std::string& s = *ttl;
        std::uint64_t seconds = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), seconds);
        if (!all_digits(s) || ec != std::errc() || end != s.data() + s.size() || seconds < min_ttl_seconds ||
            seconds > max_ttl_seconds)
            return invalid_request("ttl must be a whole number of seconds from 60 to 31536000");
        query.ttl = static_cast<std::uint32_t>(seconds);
    }

    if (meeting_id) {
        if (query.type != token_type::onbehalf)
            return invalid_request("meeting_id is only allowed with type onbehalf");
        if (!all_digits(*meeting_id) || meeting_id->size() < 9 || meeting_id->size() > 12)
            return invalid_request("meeting_id must be 9 to 12 digits");
        query.meeting_id = *meeting_id;
    }
    return query;
}

} // namespace

bool is_valid_user_id(std::string_view decoded) noexcept {
    return check_user_id(decoded) == user_id_problem::none;
}

bool is_token_route(std::string_view target) noexcept {
    // The same as target_path(target).starts_with(route_prefix), since the prefix holds no '?' or
    // '#'; without the scan for them, on the hit path.
    return target.starts_with(route_prefix);
}

result<token_query> parse_token_target(std::string_view target, bool is_delete) {
    const auto parsed = boost::urls::parse_origin_form(target);
    if (!parsed)
        return invalid_request(
            "the request target is not a valid path and query (RFC 3986): check its percent-encoding "
            "and characters");
    const boost::urls::url_view& url = *parsed;

    const std::string_view path = url.encoded_path();
    if (!path.starts_with(route_prefix))
        return invalid_request("the path must be /token/{userId}");
    const std::string_view segment = path.substr(route_prefix.size());
    if (segment.find('/') != std::string_view::npos)
        return invalid_request("the path must be /token/{userId}, with the user id as one path segment");
    // Each byte of a user id takes at most 3 characters encoded: refuse longer before decoding.
    if (segment.size() > 3 * max_user_id_bytes)
        return invalid_request(std::string(describe(user_id_problem::too_long)));
    // parse_origin_form has checked the percent-encoding, so this cannot fail; decoding is Boost.URL's.
    const auto encoded_id = boost::urls::make_pct_string_view(segment);
    if (!encoded_id)
        return invalid_request("the user id is not validly percent-encoded");

    token_query query;
    query.user_id = encoded_id->decode();
    if (const user_id_problem p = check_user_id(query.user_id); p != user_id_problem::none)
        return invalid_request(std::string(describe(p)));

    if (url.encoded_query().empty()) // no query, or a bare '?'
        return query;
    if (is_delete)
        return invalid_request("DELETE /token/{userId} takes no query parameters");

    const auto raw = read_query(url);
    if (!raw)
        return raw.error();
    return apply_query_fields(std::move(query), raw->type, raw->ttl, raw->meeting_id);
}

result<token_query> make_token_query(std::string user_id, const std::optional<std::string>& type,
                                     const std::optional<std::string>& ttl,
                                     const std::optional<std::string>& meeting_id) {
    token_query query;
    query.user_id = std::move(user_id);
    if (const user_id_problem p = check_user_id(query.user_id); p != user_id_problem::none)
        return invalid_request(std::string(describe(p)));
    return apply_query_fields(std::move(query), type, ttl, meeting_id);
}

} // namespace token_broker
