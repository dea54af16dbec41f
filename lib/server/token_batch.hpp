// The body of POST /tokens (CONTRACT.md section 3): {"requests": [{"user_id": "...", "type": "zak",
// "ttl": 3600, "meeting_id": "..."}, ...]}, 1 to 100 items. Pure: no I/O.
#pragma once

#include "core/error.hpp"
#include "core/token_query.hpp"

#include <cstddef>
#include <string_view>
#include <vector>

namespace token_broker {

inline constexpr std::size_t max_batch_items = 100;

// One item: its query when its values pass the rules of GET /token/{userId} (make_token_query),
// else the error that GET would have answered.
using batch_item = result<token_query>;

// Parses a batch. The whole request fails (invalid_request, the message saying what is wrong and,
// for an item, which one, counted from 1) when the body is not one JSON object whose only member
// "requests" is an array of 1 to 100 objects, when an object names a member twice, or when an item
// has a member other than user_id, type, ttl and meeting_id, lacks user_id, or has a member of the
// wrong JSON type (user_id, type and meeting_id strings, ttl an integer). An item whose values are
// wrong (a bad user id, a ttl out of range, meeting_id without onbehalf) fails alone, as its GET
// would. Never throws but bad_alloc.
result<std::vector<batch_item>> parse_token_batch(std::string_view body);

} // namespace token_broker
