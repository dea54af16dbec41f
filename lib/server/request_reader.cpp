#include "server/request_reader.hpp"

#include "core/target_path.hpp"

#include <boost/url/parse.hpp>
#include <fmt/format.h>

namespace token_broker {
namespace {

// Spaces and tabs around a list element (RFC 9110 5.6.1, OWS).
std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// True when a Transfer-Encoding line is exactly the one coding "chunked" (any case, OWS around it).
bool is_sole_chunked(std::string_view value) noexcept {
    return beast::iequals(trim_ows(value), "chunked");
}

// Writes the origin form ("/path?query") of an absolute-form request-target ("http://host:port/path?
// query") into `out`, or `target` itself when it is not one. Only http and https URIs are taken
// apart. An origin-form target, the usual case, is copied into `out`'s reused capacity.
void assign_origin_form(std::string& out, std::string_view target) {
    if (target.empty() || target.front() == '/')
        return void(out.assign(target.data(), target.size()));
    auto uri = boost::urls::parse_absolute_uri(target);
    if (!uri ||
        !(uri->scheme_id() == boost::urls::scheme::http || uri->scheme_id() == boost::urls::scheme::https))
        return void(out.assign(target.data(), target.size()));
    out.assign(uri->encoded_path());
    if (out.empty())
        out.push_back('/'); // not `out = "/"`, which GCC 12 at -O3 warns about falsely (-Wrestrict)
    if (uri->has_query()) {
        out.push_back('?');
        out.append(uri->encoded_query());
    }
}

} // namespace

request_reader::request_reader(request& into, std::uint32_t max_header_bytes, std::uint64_t max_body_bytes,
                               std::string_view kept_body_path)
    : into_(into), body_limit_(max_body_bytes), kept_body_path_(kept_body_path) {
    header_limit(max_header_bytes);
    body_limit(max_body_bytes);
    into_.method = http::verb::unknown;
    into_.method_name.clear();
    into_.target.clear();
    into_.authorization.clear();
    into_.request_id.clear();
    into_.trace.clear(); // the header adopts the caller's trace; session::finish starts one otherwise
    into_.body.clear();
    into_.zm_signature.clear();
    into_.zm_request_timestamp.clear();
    into_.keep_alive = true;
    into_.version = 11;
}

void request_reader::refuse(std::string_view why, beast::error_code& ec) {
    if (refusal_.empty())
        refusal_ = why;
    ec = http::error::bad_value;
}

void request_reader::on_request_impl(http::verb method, beast::string_view method_str,
                                     beast::string_view target, int version, beast::error_code&) {
    into_.method = method;
    into_.method_name.assign(method_str.data(), method_str.size());
    assign_origin_form(into_.target, target);
    into_.version = static_cast<unsigned>(version);
}

void request_reader::on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                                   beast::error_code& ec) {
    switch (name) {
    case http::field::authorization:
        if (seen_authorization_)
            return refuse("Authorization may appear only once", ec);
        seen_authorization_ = true;
        into_.authorization.assign(value.data(), value.size());
        return;
    case http::field::host:
        ++hosts_;
        return;
    case http::field::content_length:
        seen_content_length_ = true;
        return;
    case http::field::transfer_encoding:
        seen_transfer_encoding_ = true;
        transfer_encoding_chunked_ = is_sole_chunked(value);
        return;
    case http::field::unknown:
        // X-Request-Id has no field enum in Beast, so only unknown names are compared. A repeated one
        // is no id at all: the session makes a new one.
        if (beast::iequals(name_string, "x-request-id")) {
            if (seen_request_id_)
                into_.request_id.clear();
            else
                into_.request_id.assign(value.data(), value.size());
            seen_request_id_ = true;
        } else if (beast::iequals(name_string, "traceparent")) {
            ++traceparents_;
            traceparent_.assign(value.data(), value.size());
        } else if (beast::iequals(name_string, "x-zm-signature")) {
            // Repeated: neither value is taken as Zoom's (an empty one is refused as missing).
            if (!into_.zm_signature.empty())
                return refuse("x-zm-signature may appear only once", ec);
            into_.zm_signature.assign(value.data(), value.size());
        } else if (beast::iequals(name_string, "x-zm-request-timestamp")) {
            if (!into_.zm_request_timestamp.empty())
                return refuse("x-zm-request-timestamp may appear only once", ec);
            into_.zm_request_timestamp.assign(value.data(), value.size());
        } else if (beast::iequals(name_string, "tracestate")) {
            // Several tracestate lines are one list (W3C Trace Context 3.3.1.1, RFC 9110 5.3).
            if (!tracestate_.empty() && !value.empty())
                tracestate_.push_back(',');
            tracestate_.append(value.data(), value.size());
        }
        return;
    default:
        return;
    }
}

void request_reader::on_header_impl(beast::error_code& ec) {
    into_.keep_alive = keep_alive();
    if (traceparents_ > 0)
        into_.trace.adopt(traceparent_, traceparents_ > 1, tracestate_);
    keep_body_ = into_.method == http::verb::post && target_path(into_.target) == kept_body_path_;
    if (seen_transfer_encoding_ && !transfer_encoding_chunked_)
        return refuse("Transfer-Encoding other than a sole chunked is not accepted", ec);
    if (seen_transfer_encoding_ && seen_content_length_)
        return refuse("Transfer-Encoding and Content-Length may not be sent together", ec);
    if (into_.version >= 11 && hosts_ != 1)
        return refuse(hosts_ == 0 ? "an HTTP/1.1 request needs a Host header" : "Host may appear only once",
                      ec);
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
    if (!reader.refusal().empty()) {
        set_error(res, errc::invalid_request, reader.refusal());
        res.close = true;
        return read_outcome::refuse;
    }
    if (ec == http::error::header_limit) {
        set_error(res, errc::headers_too_large,
                  fmt::format("request headers are larger than {} bytes", max_header_bytes));
        return read_outcome::refuse;
    }
    if (ec == http::error::body_limit) {
        set_error(res, errc::body_too_large,
                  fmt::format("the request body is larger than {} bytes", reader.body_limit_bytes()));
        return read_outcome::refuse;
    }
    if (ec && is_quiet_close(ec))
        return read_outcome::drop;
    if (ec) {
        set_error(res, errc::invalid_request, "malformed HTTP request");
        res.close = true;
        return read_outcome::refuse;
    }
    return read_outcome::handle;
}

} // namespace token_broker
