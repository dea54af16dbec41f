// An HTTP request parser that keeps only what the broker uses (method, target, Authorization,
// X-Request-Id, traceparent and tracestate, Zoom's x-zm-signature and x-zm-request-timestamp) in the
// session's reused `request`, instead of building a header map per message. One is made per message, with the
// header limit of the configuration and a small body limit.
//
// Beyond Beast's own checks it refuses what RFC 9112 says a server must refuse, since a front proxy
// may read such a message differently and smuggle a second request behind it: a Transfer-Encoding
// other than a sole "chunked", Transfer-Encoding together with Content-Length, and in HTTP/1.1 a
// missing or repeated Host. An absolute-form target ("http://host/healthz") is kept in origin form
// ("/healthz").
#pragma once

#include "server/message.hpp"

namespace token_broker {

class request_reader final : public http::basic_parser<true> {
public:
    // Fills `into`, which must outlive the reader. Its strings are cleared first. A body beyond
    // `body_limit` bytes ends the read with http::error::body_limit (answered 413); only the body of
    // POST to `kept_body_path` (which must outlive the reader) is kept, in into.body, every other one
    // is read and dropped.
    request_reader(request& into, std::uint32_t header_limit, std::uint64_t body_limit,
                   std::string_view kept_body_path = "/tokens");

    std::uint64_t body_limit_bytes() const noexcept { return body_limit_; }

    // Why the message was refused as malformed (answered 400, then the connection is closed), or
    // empty. Set together with a parse error, which stops the parser.
    std::string_view refusal() const noexcept { return refusal_; }

private:
    void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target,
                         int version, beast::error_code& ec) override;
    void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
    void on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                       beast::error_code& ec) override;
    void on_header_impl(beast::error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
    std::size_t on_body_impl(beast::string_view body, beast::error_code&) override { return keep(body); }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
        return keep(body);
    }
    std::size_t keep(beast::string_view body) {
        if (keep_body_)
            into_.body.append(body.data(), body.size());
        return body.size();
    }
    void on_finish_impl(beast::error_code&) override {}

    void refuse(std::string_view why, beast::error_code& ec);

    request& into_;
    std::uint64_t body_limit_;
    std::string_view kept_body_path_;
    bool keep_body_ = false;
    std::string_view refusal_;
    bool seen_authorization_ = false;
    bool seen_request_id_ = false;
    // W3C trace context headers, as received; adopted into the request once the header is read.
    std::string traceparent_;
    unsigned traceparents_ = 0;
    std::string tracestate_;
    bool seen_content_length_ = false;
    bool transfer_encoding_chunked_ = false; // as the last Transfer-Encoding line ends
    bool seen_transfer_encoding_ = false;
    unsigned hosts_ = 0;
};

// What to do once reading a request has ended with `ec`.
enum class read_outcome {
    handle, // a well-formed request: hand it to the handler
    refuse, // `res` holds the refusal (431, 413 or 400); answer it, then close
    drop,   // the peer is gone or went quiet, or overflowed the buffer: close without an answer
};

// Maps the end of a read to what the session does, filling `res` for a refusal.
read_outcome classify_read(const beast::error_code& ec, const request_reader& reader,
                           std::size_t max_header_bytes, response& res);

} // namespace token_broker
