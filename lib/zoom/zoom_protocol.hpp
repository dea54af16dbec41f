// What the broker sends to Zoom and how it reads Zoom's answers (CONTRACT.md sections 3 and 5,
// docs/ZOOM-FACTS.md): pure functions of their arguments, no sockets, no clock of their own, so that
// every row of the status mapping in zoom_client.hpp is tested without a server (zoom_logic_test).
#pragma once

#include "core/error.hpp"
#include "core/secret.hpp"
#include "core/token_query.hpp"
#include "zoom/https_pool.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// The User-Agent of every request to Zoom (the API and OAuth).
inline constexpr std::string_view zoom_user_agent = "token-broker/" TOKEN_BROKER_VERSION;

// What a call made after the Zoom client was stopped answers (not_ready).
broker_error zoom_client_stopped();

// An https URL taken apart: where to connect, and the path (and query) to ask for.
struct endpoint_url {
    origin where;
    std::string path;  // encoded, without a trailing '/': "/v2"
    std::string query; // encoded, without '?'
};

// Throws std::invalid_argument naming `key` when `text` is not an https URL with a host.
endpoint_url parse_endpoint_url(const std::string& text, std::string_view key);

// The target of GET {api}/users/{userId}/token?type=..[&ttl=..][&meeting_id=..]: the user id is one
// percent-encoded path segment ("/", "?", "#", "%", " " and the dot segments "." and ".." encoded),
// so that it can never change the path. `api_path` is endpoint_url::path.
std::string token_request_target(std::string_view api_path, const token_query& q);

// The value of an Authorization header for Basic authentication (base64 by OpenSSL).
std::string basic_authorization(std::string_view user, std::string_view password);

// Text from Zoom made fit for a log line or an error message: control characters replaced by
// spaces, at most 300 bytes (then "...").
std::string printable(std::string_view text);

// Zoom's error body: {"code": 1001, "message": "..."}, or OAuth's {"error": "...", "reason": "..."}.
// Fields that are absent, of another type or (code) out of int range are left empty; a body that is
// not a JSON object gives an empty zoom_error_body. Texts are printable().
struct zoom_error_body {
    std::optional<int> code;
    std::string message;
    std::string error;  // OAuth
    std::string reason; // OAuth
};
zoom_error_body parse_error_body(std::string_view body);

// "<Zoom's message> (code N)", or "HTTP <status>" when Zoom gave no message.
std::string zoom_said(unsigned status, const zoom_error_body& e);

// What an answer of the token endpoint means, and what the client is to do with it.
struct token_answer {
    enum class verdict {
        token,                 // 200 {"token": "..."} that has not expired: `value` holds it
        failed,                // answer `value`'s error
        server_error,          // 5xx: retry while zoom.max_retries allows, else answer `value`'s error
        access_token_rejected, // 401 with code 124: renew the access token and retry once, else
                               // answer `value`'s error
        rate_limited,          // 429: block calls for `block`, answer `value`'s error
        expired_token,         // 200 with a JWT whose exp had passed at `now`: answer `value`'s error
                               // (warn and count it)
    };
    verdict what = verdict::failed;
    result<secret> value = broker_error{};
    zoom_error_body body; // Zoom's error body, for the log line (empty for 200)
    // rate_limited only: how long no token request may go to Zoom (Zoom's Retry-After, 1 s without
    // a readable one, at most max_rate_limit_block), and whether the cap shortened it.
    std::chrono::system_clock::duration block{};
    bool block_capped = false;
    // True when the answer shows that Zoom accepted the access token (200, 400, 404).
    bool access_token_accepted = false;
};

// Reads one answer of GET /users/{userId}/token: its status, its Retry-After header ("" when absent)
// and its body, received at wall time `now`. The mapping:
//   200 {"token": "<non-empty string>"}: the token, unless it is a JWT whose exp is at or before
//     `now`: expired_token, upstream_error saying it had already expired and that clocks may
//     disagree. 200 {"token": null}: token_unavailable. Any other 200 body: upstream_error.
//   404: user_not_found with Zoom's code (1001 when it gave none).
//   400: upstream_rejected with Zoom's code and message.
//   429: rate_limited, retry_after the block in whole seconds (>= 1), zoom_code Zoom's.
//   5xx: server_error, upstream_error with Zoom's code (the message counts `attempts`).
//   401 with code 124: access_token_rejected, upstream_error "Zoom rejected the access token".
//   code 4711 (any status): upstream_error naming the missing scope.
//   Other 401, 403 and anything else: upstream_error with Zoom's code and message.
// Never throws on any input but std::bad_alloc.
token_answer read_token_answer(unsigned status, std::string_view retry_after, std::string_view body,
                               std::chrono::system_clock::time_point now, unsigned attempts = 1);

// An access token from Zoom's OAuth endpoint.
struct oauth_grant {
    secret token;
    std::chrono::seconds expires_in{};
};

// Reads one answer of POST {oauth_token_url}. 200 with a non-empty "access_token" and a positive
// "expires_in" (integer, or a double of at least 1): the grant. Otherwise not_ready, "Zoom OAuth
// failed: <error>: <reason>" from OAuth's error body, or Zoom's message, or "unexpected answer from
// the OAuth endpoint" for a 200 without them.
result<oauth_grant> read_oauth_answer(unsigned status, std::string_view body);

// The broker error for an exchange that produced no answer: upstream_unavailable (cannot connect),
// upstream_timeout (naming `request_timeout`), upstream_error (TLS, a cut or broken answer), or
// not_ready for a cancelled one (the client was stopped).
broker_error transport_failure_error(const transport_error& e, std::chrono::milliseconds request_timeout);

// The `code` label of token_broker_upstream_requests_total for an exchange: the HTTP status, or
// "unreachable", "timeout", "tls_error", "protocol_error".
std::string metric_code(const exchange_result& r);

} // namespace token_broker
