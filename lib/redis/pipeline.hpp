// The command side of one Redis connection, without I/O: commands queued, their request bytes handed
// to whoever writes the socket, replies read from the bytes it receives and matched to the commands
// in the order they were sent (Redis answers in that order). The socket code around it (connection)
// feeds it bytes and asks it what to write; everything it decides can be tested with byte strings.
//
// A command whose caller gave up (abandon: its deadline passed) stays in line: Redis may still
// answer it, and that reply must be read and thrown away, never taken for the next command's.
#pragma once

#include "core/error.hpp"
#include "redis/options.hpp"
#include "redis/protocol.hpp"
#include "redis/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker::redis {

// Not thread-safe: used on one strand. Completions are called from inside push(), received(),
// abandon() and fail(), after the pipeline's own state is consistent: a completion may push another
// command or fail the pipeline, but must not destroy it.
class pipeline {
public:
    // Called exactly once per command: with its reply (a Redis error reply, "-ERR ...", is a reply), or
    // with an error (errc::cache_unavailable) when it was abandoned or the pipeline failed.
    using completion = std::function<void(result<reply>)>;
    // Names a command pushed, for abandon().
    using ticket = std::uint64_t;

    // Each reply may hold at most `max_reply_bytes` (redis::reader's budget).
    explicit pipeline(std::size_t max_reply_bytes = default_max_reply_bytes);

    // Queues one command's request bytes (format_command's); they are in the next take_output().
    // When the pipeline has failed, `done` is called at once with its failure.
    ticket push(std::string request, completion done);

    // The bytes to write next, every request pushed since the last call, handed over: from now on
    // their commands may be answered. Empty when there is nothing to write.
    std::string take_output();

    // Bytes received from Redis, in any pieces. Completes, in order, every command whose reply they
    // complete. The reason the link must be dropped, or nullopt: bytes that are not RESP, a reply over
    // the budget, or a reply when no command was sent; then the pipeline has failed (see fail()).
    std::optional<std::string> received(std::string_view bytes);

    // The caller of `t` stopped waiting: completes it now with `why`. Its reply, if Redis sends one,
    // is read and discarded. Nothing when `t` has completed already.
    void abandon(ticket t, const std::string& why);

    // The connection is gone: every command not yet completed completes with `why`, and so does every
    // later push(). The first reason stays; later calls do nothing.
    void fail(const std::string& why);

    bool failed() const noexcept { return failure_.has_value(); }
    // Why the pipeline failed; empty while it has not.
    std::string failure() const { return failure_.value_or(std::string()); }
    // Commands sent (handed over by take_output()) or queued whose reply has not been read,
    // abandoned ones included.
    std::size_t in_flight() const noexcept { return commands_.size(); }

private:
    struct command {
        ticket id;
        completion done; // empty once completed (abandoned)
    };

    void complete_next(reply r);

    reader reader_;
    std::deque<command> commands_; // in the order Redis answers them
    std::size_t sent_ = 0;         // how many of commands_, from the front, were handed over
    std::string output_;           // requests not yet handed over
    ticket next_id_ = 1;
    std::optional<std::string> failure_;
};

} // namespace token_broker::redis
