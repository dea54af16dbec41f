// The subscribed side of a Redis connection, without I/O: SUBSCRIBE sent, Redis's confirmations
// counted, publications delivered, and the PINGs of the health check matched to their answers. The
// socket code around it (subscriber) feeds it bytes and writes what it gives; everything it decides
// can be tested with byte strings.
//
// In SUBSCRIBE mode (RESP2) Redis sends arrays only: [subscribe, channel, count] once per channel,
// [message, channel, payload] for each publication, and [pong, ""] for each PING, in the order the
// PINGs were sent. An answer to a PING proves the connection alive at the moment that PING was
// sent: every publication made before then has been delivered (the invalidation lease rests on it).
// Anything else is a protocol error, and an error reply is Redis refusing the subscription.
#pragma once

#include "redis/options.hpp"
#include "redis/protocol.hpp"
#include "redis/reply.hpp"

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {

// Not thread-safe: used on one strand. One per connection.
class subscription {
public:
    using clock = std::chrono::steady_clock;

    // What received() found, in the order Redis sent it.
    struct event {
        enum class kind {
            subscribed, // Redis confirmed the last channel not confirmed yet: every channel is now
            message,    // a publication on `channel`
            alive,      // the connection was alive at `sent` (a SUBSCRIBE or PING was answered)
        };
        kind type;
        std::string channel;    // message
        std::string payload;    // message
        clock::time_point sent; // alive: when the command Redis answered was sent
    };

    // What a piece of bytes brought: the events it completed, then, when the link must be dropped,
    // why. `refused` when that is Redis refusing (an error reply, e.g. NOPERM or a full ACL): the
    // reason then quotes Redis's text.
    struct outcome {
        std::vector<event> events;
        std::optional<std::string> failure;
        bool refused = false;
    };

    // `channels` must not be empty. Each reply may hold at most `max_reply_bytes`.
    subscription(std::vector<std::string> channels, std::size_t max_reply_bytes = default_max_reply_bytes);

    // The SUBSCRIBE command for every channel, to write first; `now` is when it is sent (the first
    // `alive` event is for that moment).
    std::string subscribe(clock::time_point now);

    // The PING of the health check, sent at `now`; nullopt when the previous one has not been
    // answered yet: the connection is dead or half-open and must be dropped.
    std::optional<std::string> ping(clock::time_point now);

    // Bytes received from Redis, in any pieces. After a failure, every later call fails the same way.
    outcome received(std::string_view bytes);

    // Redis confirmed every channel.
    bool subscribed() const noexcept { return subscribe_sent_ && unconfirmed_.empty(); }

private:
    // What `r` means; false with the reason in `out` when it is not what a subscribed connection sends.
    bool interpret(const reply& r, outcome& out);
    bool confirmed(const reply& r, outcome& out);
    bool ponged(outcome& out);
    void fail(outcome& out, std::string why, bool refused = false);

    reader reader_;
    std::vector<std::string> channels_; // as given, for SUBSCRIBE
    std::set<std::string> known_;       // the same, to look up
    std::set<std::string> unconfirmed_;
    bool subscribe_sent_ = false;
    clock::time_point subscribe_time_{};
    std::deque<clock::time_point> pings_; // sent and not answered, oldest first
    std::optional<std::string> failure_;
    bool refused_ = false;
};

} // namespace token_broker::redis
