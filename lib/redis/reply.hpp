// One Redis reply, owned: a copy of what hiredis's reader produced (protocol.hpp), so that nothing
// of hiredis's memory outlives the reader call that made it.
#pragma once

#include <string>
#include <vector>

namespace token_broker::redis {

struct reply {
    enum class kind { nil, status, error, integer, string, array };
    kind type = kind::nil;
    std::string text;            // status, error, string: the bytes as sent (binary-safe)
    long long integer = 0;       // integer
    std::vector<reply> elements; // array (a nil array is kind::nil)

    bool is_error() const noexcept { return type == kind::error; }
    bool is_nil() const noexcept { return type == kind::nil; }
    // True for a simple status reply equal to `s` ("OK", "QUEUED"...).
    bool is_status(const char* s) const { return type == kind::status && text == s; }
};

} // namespace token_broker::redis
