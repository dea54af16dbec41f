// The signed webhook requests already answered within the tolerance window (CONTRACT.md section 9):
// the same request seen again (same timestamp and signature) gets the first one's answer and is not
// acted on twice. Bounded in entries; thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace token_broker::webhook {

// An answer as it was given: the HTTP status and the JSON body.
struct remembered_answer {
    unsigned status = 200;
    std::string body;
};

class replay_memory {
public:
    // Remembers at most `max_entries` answers; when full, the one with the oldest timestamp goes.
    // Answers whose timestamp is more than `window` before the clock passed in are forgotten.
    replay_memory(std::chrono::seconds window, std::size_t max_entries);

    // The answer given to the request with this timestamp (whole Unix seconds) and signature, if it
    // is still remembered at `now`.
    std::optional<remembered_answer> find(long long timestamp, std::string_view signature,
                                          std::chrono::seconds now);

    // Remembers the answer to a request. Only final answers are remembered: one that asks Zoom to
    // try again (a 5xx) is not, so that the retry is acted on.
    void remember(long long timestamp, std::string_view signature, remembered_answer answer,
                  std::chrono::seconds now);

    std::size_t size() const;

private:
    void expire(std::chrono::seconds now);

    std::chrono::seconds window_;
    std::size_t max_entries_;
    mutable std::mutex mutex_;
    std::map<std::pair<long long, std::string>, remembered_answer, std::less<>> answers_;
};

} // namespace token_broker::webhook
