// What the HTTP session asks of the code that answers requests, and the state a connection keeps
// between its requests.
#pragma once

#include "cache/token_service.hpp"
#include "server/message.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace token_broker {

class authenticator;
struct caller_key;

// The caller key a connection presented last and what it was found to be, so that a kept-alive
// caller sending the same Authorization header again is not hashed again.
struct authorization_memo {
    std::string header;
    std::shared_ptr<const authenticator> keys; // the key set it was checked against
    const caller_key* key = nullptr;           // in `keys`; nullptr: unknown
};

// A token request admitted (authenticated, parsed, authorized) and looked up once, that missed the
// cache: what the coroutine that completes it needs.
struct pending_token {
    token_query query;
    std::shared_ptr<const authenticator> keys; // keeps `key` and `key_name` alive
    const caller_key* key = nullptr;           // null when no keys are configured
    std::string_view key_name;                 // for the audit line
    token_service::ticket ticket;              // its place in the key's single flight
};

// A POST /tokens whose misses are being fetched (defined by the token endpoint).
struct pending_batch;

// A Zoom event whose evictions are being confirmed (defined by the webhook receiver).
struct pending_webhook;

// What one connection keeps from one request to the next. Owned by the session; only ever used on
// the connection's executor.
struct connection_context {
    authorization_memo caller;
    pending_token pending; // the caller, and the query of a GET that answer() left to complete()
    std::shared_ptr<pending_batch> batch;     // a batch that answer() left to complete()
    std::shared_ptr<pending_webhook> webhook; // an event that answer() left to complete()
};

// Answers requests. Both members run on the connection's executor (a strand when server.threads > 1)
// and fill `res`; expected failures are answers (set_error), not exceptions. An exception that
// escapes is logged and answered 500.
class request_handler {
public:
    virtual ~request_handler() = default;

    // Admits and routes `req` once. Returns true when `res` holds the answer. Returns false when the
    // answer has to wait (a cache miss): the work is then left in `ctx`, and complete() is called
    // next, before anything else happens on the connection.
    virtual bool answer(const request& req, connection_context& ctx, response& res) = 0;

    // Finishes the work answer() left in `ctx`.
    virtual net::awaitable<void> complete(const request& req, connection_context& ctx, response& res) = 0;
};

} // namespace token_broker
