// A stand-in for Zoom's REST API: a real TLS server on loopback answering the S2S OAuth endpoint and
// GET /v2/users/{userId}/token as Zoom does, with faults that tests can inject and counters they can
// assert on. Used by the tests, the benchmarks and `scripts/dev run` (through the zoom-sim program).
// It also plays Zoom's side of a user's life: deactivating a user (or signing them out, activating
// them again, deauthorizing the app) changes what it answers and posts the matching event
// notification, signed as Zoom signs them, to a configured webhook URL.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zoom_sim {

// How the simulator's own TLS certificate is made.
enum class tls_identity {
    trusted,      // signed by the CA written to ca_file(), valid for localhost and 127.0.0.1
    wrong_host,   // signed by that CA but valid only for "not-zoom.invalid"
    untrusted_ca, // valid for localhost, signed by another CA that ca_file() does not hold
};

struct options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0; // 0: any free port, see port()
    std::string account_id = "sim-account";
    std::string client_id = "sim-client";
    std::string client_secret = "sim-secret";
    std::chrono::seconds access_token_ttl{3600};
    // Where ca.pem (and the server's cert.pem and key.pem) are written. Empty: a new temporary
    // directory, removed by the destructor. When ca.pem and ca-key.pem are there already, that CA is
    // reused (so a restarted zoom-sim keeps the trust of its clients); else both are written.
    std::string cert_dir{};
    tls_identity identity = tls_identity::trusted;
    // Extra DNS names in the server certificate of the trusted and untrusted_ca identities, besides
    // localhost, 127.0.0.1 and ::1 (e.g. a docker compose service name).
    std::vector<std::string> hostnames{};
    // Bytes of padding in each ZAK payload, to make tokens of a realistic or chosen size.
    std::size_t token_padding = 0;
    unsigned threads = 1;
    // Where event notifications are posted (plain HTTP, e.g. "http://127.0.0.1:8081/zoom/webhook";
    // empty: not posted) and the app's Secret Token they are signed with. See set_webhook().
    std::string webhook_url{};
    std::string webhook_secret{};
};

// A fault applied to the requests it matches.
struct fault {
    enum class kind {
        delay,          // answer normally after `delay`
        hang,           // read the request and never answer (until the client gives up)
        server_error,   // answer `status` (5xx) with a Zoom-style error body
        rate_limited,   // answer 429; `retry_after` is the header's value ("" = no header)
        not_json,       // answer 200 with a body that is not JSON
        cut_mid_answer, // send the status line, headers and part of the body, then close
        close_at_once,  // close the connection without answering
        expired_token,  // answer 200 with a ZAK (JWT) whose exp passed an hour ago, as a Zoom with
                        // a skewed clock or a broken upstream would
    };
    kind what = kind::server_error;
    std::chrono::milliseconds delay{0};
    unsigned status = 500;
    std::string retry_after{};
    int times = 1; // how many matching requests it applies to; -1: until cleared
};

// Per-user behaviour. Tokens: type=zak lives `ttl` (default zak_ttl, else 7200 s), type=onbehalf
// `ttl` (default 1800 s) with a unique "jti" claim, type=token (Zoom's default type) 14 days;
// all three are HS256 JWTs carrying "iat" and "exp".
struct user_options {
    bool google_login = false;              // type=token answers {"token": null}
    std::optional<std::uint32_t> zak_ttl{}; // default ttl when none is asked (7200 otherwise)
};

class simulator {
public:
    // Binds the listener at once (so port() is known) and serves on its own threads until destroyed
    // or stop() is called. Throws std::runtime_error when it cannot bind or make certificates.
    explicit simulator(options opts = {});
    ~simulator();
    simulator(const simulator&) = delete;
    simulator& operator=(const simulator&) = delete;

    std::uint16_t port() const;
    std::string base_url() const;  // "https://localhost:PORT/v2"
    std::string oauth_url() const; // "https://localhost:PORT/oauth/token"
    std::string ca_file() const;   // PEM of the CA that signs the trusted identity
    // The options in force: port and cert_dir hold the real port and directory.
    const options& settings() const;

    // Closes the listener and every connection (hung requests included) and joins the threads,
    // within about half a second. Idempotent; the destructor calls it.
    void stop();

    // Users. Every id exists unless it starts with "unknown" or was removed; "me" exists.
    void add_user(const std::string& id, user_options u = {});
    void remove_user(const std::string& id);

    // Faults. With a user id, they apply to that user's token requests; without, to every request
    // (OAuth included) in the order injected. clear_faults() removes all of them.
    // A request takes the first fault of its most specific list (the user's, or the OAuth list),
    // else the first global one; each match uses up one of `times` and an exhausted fault is
    // dropped, so faults of a list apply one after the other. Faults come before any check of
    // credentials or parameters. `times` 0 injects nothing; any negative value means "until cleared".
    void inject(fault f, std::optional<std::string> user = std::nullopt);
    void inject_oauth(fault f); // only OAuth requests
    void clear_faults();

    // Makes every access token issued so far invalid: token requests carrying one get 401/124.
    void revoke_access_tokens();

    // Zoom's event notifications. Each call below changes what the simulator answers first, then
    // posts the event (ZOOM-FACTS.md, "Webhooks": {"event", "event_ts", "payload"}) to the webhook
    // URL, signed with the Secret Token: x-zm-request-timestamp (Unix seconds) and x-zm-signature
    // (v0=hex HMAC-SHA256 over "v0:{timestamp}:{body}"). The user named `id` is payload.object: an
    // email names {id: "sim" + 22 hex digits derived from it, email: it, lower-cased}; anything else
    // {id: it, email: "<it, lower-cased>@users.zoom-sim.invalid"}. Blocking: call them from a thread
    // of your own (not after stop()); the post has 5 s.
    struct event_delivery {
        int status = 0;    // the webhook's HTTP status; 0 when none came (see `error`)
        std::string body;  // its body
        std::string error; // why nothing came: no webhook URL, cannot connect, timeout
    };
    // Sets (or replaces) the webhook URL and Secret Token of options. Any thread.
    void set_webhook(const std::string& url, const std::string& secret_token);
    // The user's token calls (by id or email) answer 404 with code 1001, as for a user who does not
    // exist, until activate_user(); posts user.deactivated.
    event_delivery deactivate_user(const std::string& id);
    // Undoes deactivate_user(); posts user.activated.
    event_delivery activate_user(const std::string& id);
    // Posts user.signed_out ("Sign Me Out from All Devices"); token calls go on as before.
    event_delivery sign_out_user(const std::string& id);
    // Makes every access token issued so far invalid (as revoke_access_tokens(); new ones are still
    // issued, as after the app is added again) and posts app_deauthorized.
    event_delivery deauthorize_app();

    // Makes `token` a valid access token for `ttl` from now, as if it had been issued: for tests of
    // a fixed access token that Zoom starts accepting.
    void accept_access_token(const std::string& token, std::chrono::seconds ttl = std::chrono::hours{1});

    // Counters. A request counts as soon as it is read, whether a fault or an error answers it.
    // `user` is the percent-decoded id ("jdoe@example.com").
    std::uint64_t token_calls(const std::string& user) const; // token requests that reached the handler
    std::uint64_t token_calls() const;
    std::uint64_t oauth_calls() const;
    // Every access token issued so far (revoked ones too), for tests that look for them in logs.
    std::vector<std::string> issued_access_tokens() const;
    // Every token request that reached the handler, in order: the percent-decoded user, the
    // steady_clock time it was read (for tests of the request rate), and its W3C trace context
    // headers as received (empty when absent). Only the latest 100000 are kept.
    struct token_call {
        std::string user;
        std::chrono::steady_clock::time_point at;
        std::string traceparent{};
        std::string tracestate{};
    };
    std::vector<token_call> token_call_log() const;
    std::uint64_t connections_accepted() const;
    std::uint64_t open_connections() const;
    // The request targets received, in order (e.g. "/v2/users/jdoe%40example.com/token?type=zak"),
    // as sent: percent-encoding kept. Every request counts, OAuth ones ("/oauth/token") too. Only the
    // latest 100000 are kept.
    std::vector<std::string> received_targets() const;
    void reset_counters();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace zoom_sim
