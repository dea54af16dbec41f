// The path of an HTTP request target.
#pragma once

#include <string_view>

namespace token_broker {

// Everything before the first '?' or '#': the path of an origin-form target, as sent (not decoded).
inline std::string_view target_path(std::string_view target) noexcept {
    return target.substr(0, target.find_first_of("?#"));
}

} // namespace token_broker
