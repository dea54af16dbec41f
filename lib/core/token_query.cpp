#include "core/token_query.hpp"

namespace token_broker {

std::string_view to_string(token_type t) noexcept {
    switch (t) {
    case token_type::zak:
        return "zak";
    case token_type::token:
        return "token";
    case token_type::onbehalf:
        return "onbehalf";
    }
    return "zak";
}

std::optional<token_type> parse_token_type(std::string_view s) noexcept {
    if (s == "zak")
        return token_type::zak;
    if (s == "token")
        return token_type::token;
    if (s == "onbehalf")
        return token_type::onbehalf;
    return std::nullopt;
}

} // namespace token_broker
