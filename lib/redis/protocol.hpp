// RESP without sockets: hiredis's reply reader and command formatter (CONTRACT.md section 7: the
// bytes go over the broker's own Asio streams, plain or TLS; hiredis does only the byte-level work).
#pragma once

#include "core/error.hpp"
#include "redis/options.hpp"
#include "redis/reply.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct redisReader;

namespace token_broker::redis {

namespace detail {
struct reply_budget;
}

// The request bytes of one command, each argument sent as a bulk string with its length, so that
// any byte (NUL included) may be in an argument. Throws std::bad_alloc when hiredis cannot allocate.
std::string format_command(std::span<const std::string_view> args);
std::string format_command(std::span<const std::string> args);

// Turns bytes from a Redis server into replies, in the order they were sent. One per connection.
// A protocol error (bytes that are not RESP, nesting deeper than hiredis's limit, a reply over the
// budget) is permanent: the reader answers errors from then on and the connection must be dropped;
// a new connection gets a new reader. Not thread-safe; movable, not copyable.
//
// The budget: what one reply holds, the reply objects built for it (an array's elements count as
// soon as its header announces them, before anything is allocated for them; a string its bytes)
// and its bytes received but not yet parsed, may not pass `max_reply_bytes`. hiredis builds the
// replies through the reader's own object functions, which refuse what does not fit; the bytes
// still buffered are checked by take() each time it needs more, so a caller that takes every reply
// before it feeds more holds at most `max_reply_bytes` plus the bytes of one feed.
class reader {
public:
    explicit reader(std::size_t max_reply_bytes = default_max_reply_bytes);
    ~reader();
    reader(reader&&) noexcept;
    reader& operator=(reader&&) noexcept;

    // Adds bytes received. False when the reader is in error (see error()).
    bool feed(std::string_view bytes);

    // The next complete reply; nullopt when more bytes are needed; an error (errc::cache_unavailable,
    // "redis protocol error: ...") when the bytes are not RESP or the reply passes the budget, then
    // and on every later call. A Redis error reply ("-ERR ...") is a reply, not an error.
    result<std::optional<reply>> take();

    // The bytes fed after the last reply take() returned, not parsed yet: what a connection hands on
    // when another reader takes over its stream (the handshake's reader to the pipeline's). Exact
    // right after take() returned a reply; empty after a protocol error.
    std::string_view unparsed() const noexcept;

    // True after a protocol error.
    bool failed() const noexcept { return !error_.empty(); }
    // The protocol error, empty when there was none.
    const std::string& error() const noexcept { return error_; }

private:
    std::unique_ptr<detail::reply_budget> budget_; // hiredis's private data: stays put when moved
    redisReader* r_ = nullptr;
    std::string error_;
};

} // namespace token_broker::redis
