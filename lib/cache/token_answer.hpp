// The JSON body of a token answer (CONTRACT.md section 3). A cache entry holds the part that does not
// change while it is cached, up to "expires_in":, so that a hit only appends two numbers to a reused
// buffer.
#pragma once

#include "cache/token_cache.hpp"
#include "core/secret.hpp"

#include <string>
#include <string_view>

namespace token_broker {

// Where an answer came from, for the body's "cached"/"stale" and the audit line's source.
enum class answer_source {
    fresh,  // fetched from Zoom for this request
    cached, // from the cache
    stale,  // from an older entry, because Zoom was failing
};

// The part of an answer that does not change while it is cached:
// {"token":"...","type":"zak","user_id":"...","expires_at":"2026-11-29T23:00:00Z","expires_in":
std::string render_answer_prefix(std::string_view token, token_type type, std::string_view user_id,
                                 time_point expires_at);

// Replaces `body` with the whole answer: `prefix`, the whole seconds from `now` to `expires_at` (0 once
// past), and "cached" (and "stale") as `source` says. Allocates nothing once `body` has grown.
void render_answer(const secret& prefix, time_point expires_at, time_point now, answer_source source,
                   std::string& body);

// RFC 3339 UTC with whole seconds, e.g. "2026-11-29T23:00:00Z".
std::string format_rfc3339(time_point t);

} // namespace token_broker
