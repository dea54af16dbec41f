// Zoom's webhook signatures (CONTRACT.md section 9; docs/ZOOM-FACTS.md, "Webhooks"): what a request
// must carry to be acted on, checked over the body's bytes as received. Pure functions of their
// arguments and the clock value passed in: no sockets, no clock of their own.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker::webhook {

// Why a request's signature is refused. Named in the warning that is logged; never the signature
// or the secret itself.
enum class refusal {
    missing_signature = 1, // no x-zm-signature
    malformed_signature,   // not "v0=" and 64 lower-case hex digits
    missing_timestamp,     // no x-zm-request-timestamp
    malformed_timestamp,   // not whole seconds (decimal digits only, at most 12 of them)
    outside_window,        // more than the tolerance away from the broker's clock, either way
    wrong_signature,       // well formed, but not the HMAC of this timestamp and body
};

// "missing x-zm-signature", "timestamp outside the tolerance window", ...
std::string_view describe(refusal r) noexcept;

// "v0=" + lower-case hex of HMAC-SHA256(secret, "v0:" + timestamp + ":" + body).
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body);

// Lower-case hex of HMAC-SHA256(secret, plain_token): the encryptedToken of a URL validation.
std::string encrypted_token(std::string_view secret, std::string_view plain_token);

// Checks the two headers of a request (empty views when absent) against its raw body. `now` is the
// broker's clock as Unix seconds; the timestamp may differ from it by at most `tolerance` in either
// direction. The signature is compared in constant time. Returns nothing when the request is
// Zoom's, else why not.
std::optional<refusal> verify(std::string_view secret, std::string_view signature_header,
                              std::string_view timestamp_header, std::string_view body,
                              std::chrono::seconds now, std::chrono::seconds tolerance);

} // namespace token_broker::webhook
