#include "server/request_reader.hpp"

#include <fmt/format.h>

namespace token_broker {

request_reader::request_reader(request& into, std::uint32_t max_header_bytes) : into_(into) {
    header_limit(max_header_bytes);
    body_limit(max_request_body);
    into_.method = http::verb::unknown;
    into_.method_name.clear();
    into_.target.clear();
    into_.authorization.clear();
    into_.request_id.clear();
    into_.keep_alive = true;
    into_.version = 11;
}

void request_reader::on_request_impl(http::verb method, beast::string_view method_str,
                                     beast::string_view target, int version, beast::error_code&) {
    into_.method = method;
    into_.method_name.assign(method_str.data(), method_str.size());
    into_.target.assign(target.data(), target.size());
    into_.version = static_cast<unsigned>(version);
}

void request_reader::on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                                   beast::error_code&) {
    if (name == http::field::authorization) {
        duplicate_ |= seen_authorization_;
        seen_authorization_ = true;
        into_.authorization.assign(value.data(), value.size());
    } else if (name == http::field::unknown && beast::iequals(name_string, "x-request-id")) {
        // X-Request-Id has no field enum in Beast, so only unknown names are compared.
        duplicate_ |= seen_request_id_;
        seen_request_id_ = true;
        into_.request_id.assign(value.data(), value.size());
    }
}

void request_reader::on_header_impl(beast::error_code&) {
    into_.keep_alive = keep_alive();
}

namespace {

bool is_quiet_close(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == http::error::buffer_overflow || ec == beast::error::timeout ||
           ec == net::error::operation_aborted || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == ssl::error::stream_truncated || ec == net::error::bad_descriptor;
}

} // namespace

read_outcome classify_read(const beast::error_code& ec, const request_reader& reader,
                           std::size_t max_header_bytes, response& res) {
    if (ec == http::error::header_limit) {
        set_error(res, errc::headers_too_large,
                  fmt::format("request headers are larger than {} bytes", max_header_bytes));
        return read_outcome::refuse;
    }
    if (ec == http::error::body_limit) {
        set_error(res, errc::payload_too_large,
                  fmt::format("request bodies are not accepted beyond {} bytes", max_request_body));
        return read_outcome::refuse;
    }
    if (ec && is_quiet_close(ec))
        return read_outcome::drop;
    if (ec) {
        set_error(res, errc::invalid_request, "malformed HTTP request");
        res.close = true;
        return read_outcome::refuse;
    }
    if (reader.duplicate_header()) {
        set_error(res, errc::invalid_request, "Authorization and X-Request-Id may appear only once");
        res.close = true;
        return read_outcome::refuse;
    }
    return read_outcome::handle;
}

} // namespace token_broker
