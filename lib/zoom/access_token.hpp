// The keeper of the access token that authorizes the broker's requests to Zoom (CONTRACT.md
// section 5): the interface the Zoom client asks, and the fixed-token keeper (zoom.access_token).
// The S2S OAuth keeper is oauth_access_token.hpp; a keeper shared by replicas (section 7) fits the
// same interface.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "core/secret.hpp"

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

namespace token_broker {

struct readiness {
    bool ready = false;
    std::string reason; // why not ready, for /readyz and 503 messages; empty when ready
};

// Every member but ready() is called on the strand the keeper was made for (the Zoom client's);
// current() completes there. ready() may be called from any thread and never blocks on I/O.
class access_token_source {
public:
    virtual ~access_token_source() = default;

    // Begins keeping a token: a keeper that fetches them fetches one now, without waiting for a
    // caller. Called once.
    virtual void start() = 0;

    // Ends background work; callers waiting in current() get not_ready. Idempotent.
    virtual void stop() = 0;

    // A valid access token, waiting until `deadline` (a time of the client's steady clock) for one
    // being fetched. Errors: not_ready (none can be had: OAuth failing, with Zoom's reason; or
    // stopped), upstream_timeout (none arrived by `deadline`).
    virtual net::awaitable<result<secret>> current(std::chrono::steady_clock::time_point deadline) = 0;

    // Zoom answered 401 with code 124 to a request made with `token`; `why` is what Zoom said.
    // The keeper replaces its token only if it is still `token` (a request that used an older one
    // must not throw away a newer one that works), and reports not ready until it has another.
    virtual void rejected(const secret& token, std::string_view why) = 0;

    // Zoom answered a request made with `token` in a way that shows it accepted the token.
    virtual void accepted(const secret& token) = 0;

    // app_deauthorized (CONTRACT.md section 9): the token held is dropped and the keeper is not ready,
    // "app deauthorized", until it holds a new one that works.
    virtual void deauthorized() = 0;

    virtual readiness ready() const = 0;
};

// A fixed access token, for manual use and tests: never fetched, never renewed. Ready (the client
// says whether it is started) until Zoom rejects it; then not ready, with Zoom's reason, until a request made
// with it succeeds again (the token keeps being offered: only Zoom can say it works again).
class fixed_access_token final : public access_token_source {
public:
    explicit fixed_access_token(secret token);

    void start() override;
    void stop() override;
    net::awaitable<result<secret>> current(std::chrono::steady_clock::time_point deadline) override;
    void rejected(const secret& token, std::string_view why) override;
    void accepted(const secret& token) override;
    // A fixed token cannot be replaced: not ready, "app deauthorized", until Zoom accepts it again.
    void deauthorized() override;
    readiness ready() const override;

private:
    const secret token_;
    mutable std::mutex mutex_;
    bool stopped_ = false;
    std::string rejection_; // Zoom's reason while it rejects the token, else empty
};

} // namespace token_broker
