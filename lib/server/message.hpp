// What the HTTP layer hands to handlers and takes back from them. A session owns one `request` and
// one `response` for its whole life and reuses their buffers, so answering a request allocates
// nothing once the buffers have grown to size.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "core/trace_context.hpp"
#include "metrics/metrics.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// A request whose header has been read. The strings are copies, valid until the next request.
struct request {
    http::verb method = http::verb::unknown;
    std::string method_name;
    std::string target;
    std::string authorization;        // the Authorization header, empty when absent
    std::string request_id;           // the caller's X-Request-Id when sane, else a new one
    trace_context trace;              // the caller's W3C trace when its traceparent is valid, else a new one
    std::string body;                 // kept for POST on the listener's kept_body_path only (/tokens, or
                                      // webhook.path); other bodies are read and dropped
    std::string zm_signature;         // Zoom's x-zm-signature, empty when absent
    std::string zm_request_timestamp; // Zoom's x-zm-request-timestamp, empty when absent
    bool keep_alive = true;
    unsigned version = 11;
    std::chrono::steady_clock::time_point received_at;
};

// The answer a handler fills in. `body` keeps its capacity from one request to the next.
struct response {
    unsigned status = 200;
    route counted_as = route::other; // the route it is counted under in the metrics
    std::string_view content_type = "application/json";
    std::string body;
    std::string_view allow;               // the Allow header, for 405
    bool www_authenticate = false;        // adds WWW-Authenticate: Bearer, for 401
    std::optional<long long> retry_after; // seconds, for 429
    bool close = false;                   // the connection is closed after this answer

    void clear() {
        status = 200;
        counted_as = route::other;
        content_type = "application/json";
        body.clear();
        allow = {};
        www_authenticate = false;
        retry_after.reset();
        close = false;
    }
};

// Fills `out` with the error body of CONTRACT.md section 3 and the status and headers for `e`:
// {"error": {"code": "...", "message": "...", "zoom_code": N}}.
void set_error(response& out, const broker_error& e);
void set_error(response& out, errc code, std::string_view message);

// Appends the whole HTTP/1.1 message for `res` (status line, headers, body) to `out`. The answer to a
// HEAD request has no body (its Content-Length is the body's all the same); a 204 has neither.
void serialize_response(const request& req, const response& res, std::string& out);

// True when `id` may be echoed as X-Request-Id: 1 to 128 visible ASCII characters.
bool is_sane_request_id(std::string_view id) noexcept;

// Writes a new request id (16 hex digits, unique within the process and unlikely across processes).
void make_request_id(std::string& out);

} // namespace token_broker
