// What a caller asks Zoom for: whose token, of which type, for how long.
#pragma once

#include "core/trace_context.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

enum class token_type { zak, token, onbehalf };

// "zak", "token" or "onbehalf".
std::string_view to_string(token_type t) noexcept;

// The type named by `s`, or std::nullopt for anything else (including "zpk").
std::optional<token_type> parse_token_type(std::string_view s) noexcept;

struct token_query {
    std::string user_id; // validated, percent-decoded once
    token_type type = token_type::zak;
    std::optional<std::uint32_t> ttl;      // seconds, 60..31536000; absent: Zoom's default
    std::optional<std::string> meeting_id; // onbehalf only, 9 to 12 digits
    // The request's trace, for the Zoom call: set only when Zoom may be called (a cache hit neither
    // copies nor moves it); absent or empty: the call starts a trace of its own.
    std::optional<trace_context> trace{};
};

} // namespace token_broker
