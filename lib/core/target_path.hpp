// The path of an HTTP request target.
#pragma once

#include <cstddef>
#include <string_view>

namespace token_broker {

// Everything before the first '?' or '#': the path of an origin-form target, as sent (not decoded).
// A plain loop: on the hit path, where it runs for every request, string_view::find_first_of costs
// several times as much (libstdc++ calls memchr on the set for every character of the target).
inline std::string_view target_path(std::string_view target) noexcept {
    std::size_t end = 0;
    while (end < target.size() && target[end] != '?' && target[end] != '#')
        ++end;
    return target.substr(0, end);
}

} // namespace token_broker
