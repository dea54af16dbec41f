// Who a user id names, for forgetting (CONTRACT.md sections 3 and 9): an email address is the same
// user whatever the case of its letters, so "JDoe@Example.com" and "jdoe@example.com" are forgotten
// together, here and in Redis. A Zoom user id (no '@') and "me" are compared exactly. The cache keys
// themselves keep the id as the caller gave it (answers echo it back).
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace token_broker {

// True when `id` is an email address (holds an '@'): then case does not matter.
inline bool is_email_user_id(std::string_view id) noexcept {
    return id.find('@') != std::string_view::npos;
}

inline char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// The id under which a user's tokens are forgotten: an email lower-cased (ASCII), anything else as
// it is.
inline std::string user_identity(std::string_view id) {
    std::string out(id);
    if (is_email_user_id(id))
        std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

// Whether two ids name the same user: emails compared without regard to ASCII case, others exactly.
inline bool same_user(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size() || !is_email_user_id(a))
        return a == b;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

// Hash and equality of user ids that agree with same_user(), for indexes by user.
struct user_identity_hash {
    std::size_t operator()(std::string_view id) const noexcept {
        if (!is_email_user_id(id))
            return std::hash<std::string_view>{}(id);
        std::size_t h = 14695981039346656037ull; // FNV-1a over the lower-cased bytes
        for (char c : id)
            h = (h ^ static_cast<unsigned char>(ascii_lower(c))) * 1099511628211ull;
        return h;
    }
};
struct user_identity_equal {
    bool operator()(std::string_view a, std::string_view b) const noexcept { return same_user(a, b); }
};

} // namespace token_broker
