#include "cache/jwt.hpp"

#include "core/base64.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cmath>

namespace token_broker {
namespace {

std::optional<std::int64_t> integral_exp(const boost::json::value& exp) noexcept {
    if (exp.is_int64()) {
        const std::int64_t v = exp.get_int64();
        if (v >= 0 && v <= max_jwt_exp)
            return v;
    } else if (exp.is_uint64()) {
        const std::uint64_t v = exp.get_uint64();
        if (v <= static_cast<std::uint64_t>(max_jwt_exp))
            return static_cast<std::int64_t>(v);
    } else if (exp.is_double()) {
        const double v = exp.get_double();
        // The range check comes first so that the conversion below is always defined.
        if (std::isfinite(v) && v >= 0 && v <= static_cast<double>(max_jwt_exp) && std::floor(v) == v)
            return static_cast<std::int64_t>(v);
    }
    return std::nullopt;
}

} // namespace

std::optional<std::int64_t> jwt_expiry(std::string_view token) noexcept {
    try {
        const std::size_t first = token.find('.');
        if (first == std::string_view::npos)
            return std::nullopt;
        const std::size_t second = token.find('.', first + 1);
        if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
            return std::nullopt;
        const std::string_view header = token.substr(0, first);
        const std::string_view payload = token.substr(first + 1, second - first - 1);
        const std::string_view signature = token.substr(second + 1);
        if (header.empty() || payload.empty() || signature.empty())
            return std::nullopt;
        if (!is_base64url(header) || !is_base64url(signature))
            return std::nullopt;

        const std::optional<std::string> json = base64url_decode(payload, max_jwt_payload_bytes);
        if (!json)
            return std::nullopt;
        boost::system::error_code ec;
        const boost::json::value claims = boost::json::parse(*json, ec);
        if (ec || !claims.is_object())
            return std::nullopt;
        const boost::json::value* exp = claims.get_object().if_contains("exp");
        if (!exp)
            return std::nullopt;
        return integral_exp(*exp);
    } catch (...) {
        // Only std::bad_alloc can get here; a token whose expiry cannot be read is treated as a non-JWT.
        return std::nullopt;
    }
}

} // namespace token_broker
