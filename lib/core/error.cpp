#include "core/error.hpp"

#include <boost/throw_exception.hpp>

#include <stdexcept>

namespace token_broker {

std::string_view code_name(errc e) noexcept {
    switch (e) {
    case errc::invalid_request:
        return "invalid_request";
    case errc::upstream_rejected:
        return "upstream_rejected";
    case errc::unauthorized:
        return "unauthorized";
    case errc::forbidden:
        return "forbidden";
    case errc::user_not_found:
        return "user_not_found";
    case errc::token_unavailable:
        return "token_unavailable";
    case errc::not_found:
        return "not_found";
    case errc::method_not_allowed:
        return "method_not_allowed";
    case errc::body_too_large:
        return "body_too_large";
    case errc::rate_limited:
        return "rate_limited";
    case errc::headers_too_large:
        return "headers_too_large";
    case errc::upstream_error:
        return "upstream_error";
    case errc::not_ready:
        return "not_ready";
    case errc::upstream_unavailable:
        return "upstream_unavailable";
    case errc::cache_unavailable:
        return "cache_unavailable";
    case errc::upstream_timeout:
        return "upstream_timeout";
    case errc::internal_error:
        return "internal_error";
    }
    return "internal_error";
}

unsigned http_status(errc e) noexcept {
    switch (e) {
    case errc::invalid_request:
    case errc::upstream_rejected:
        return 400;
    case errc::unauthorized:
        return 401;
    case errc::forbidden:
        return 403;
    case errc::user_not_found:
    case errc::token_unavailable:
    case errc::not_found:
        return 404;
    case errc::method_not_allowed:
        return 405;
    case errc::body_too_large:
        return 413;
    case errc::rate_limited:
        return 429;
    case errc::headers_too_large:
        return 431;
    case errc::upstream_error:
        return 502;
    case errc::not_ready:
    case errc::upstream_unavailable:
    case errc::cache_unavailable:
        return 503;
    case errc::upstream_timeout:
        return 504;
    case errc::internal_error:
        return 500;
    }
    return 500;
}

void throw_exception_from_error(const broker_error& e, const boost::source_location& loc) {
    boost::throw_exception(std::runtime_error(std::string(code_name(e.code)) + ": " + e.message), loc);
}

} // namespace token_broker
