// Broker errors: every expected failure, from a bad user id to Zoom being down, is one of these
// values. They are mapped to an HTTP status and a JSON error body in exactly one place
// (`http_status` and `code_name` below, used by the router).
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// Starts at 1 so that a default-constructed (zero) code is never mistaken for an error.
enum class errc {
    invalid_request = 1,  // 400
    upstream_rejected,    // 400, Zoom answered 400
    unauthorized,         // 401
    forbidden,            // 403
    user_not_found,       // 404, Zoom 404 / 1001
    token_unavailable,    // 404, Zoom answered {"token": null}
    not_found,            // 404, unknown route
    method_not_allowed,   // 405
    body_too_large,       // 413
    rate_limited,         // 429
    headers_too_large,    // 431
    upstream_error,       // 502
    not_ready,            // 503, no usable Zoom access token
    upstream_unavailable, // 503, Zoom cannot be reached
    cache_unavailable,    // 503, DELETE while Redis cannot confirm every replica forgot
    upstream_timeout,     // 504
    internal_error,       // 500, a bug: should never be seen. Keep it last (see last_errc).
};

// The last code, so that every code from 1 to this one can be gone through.
inline constexpr errc last_errc = errc::internal_error;

// The machine-readable code used in error bodies, e.g. "invalid_request".
std::string_view code_name(errc e) noexcept;

// The HTTP status an error is answered with.
unsigned http_status(errc e) noexcept;

// An expected failure with what a person needs to understand it. Never holds a secret.
struct broker_error {
    errc code = errc::internal_error;
    std::string message;
    std::optional<int> zoom_code;                    // Zoom's own error code, when it gave one
    std::optional<std::chrono::seconds> retry_after; // for rate_limited
    // True when Zoom was called for this answer (the error is Zoom's, or Zoom could not be reached);
    // false when the broker refused by itself: its request budget, a 429 block, no access token.
    bool asked_zoom = false;
};

inline broker_error make_error(errc code, std::string message) {
    return broker_error{code, std::move(message), std::nullopt, std::nullopt, false};
}

// Used by boost::system::result<T, broker_error>::value() when it holds an error.
[[noreturn]] void throw_exception_from_error(const broker_error& e, const boost::source_location& loc);

// The result of an operation that can fail in an expected way.
template <class T>
using result = boost::system::result<T, broker_error>;

} // namespace token_broker
