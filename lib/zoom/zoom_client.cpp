#include "zoom/zoom_client.hpp"

#include "metrics/metrics.hpp"
#include "zoom/backoff.hpp"
#include "zoom/https_pool.hpp"
#include "zoom/rate_limiter.hpp"
#include "zoom/retry_after.hpp"
#include "zoom/wait_queue.hpp"

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <mutex>
#include <openssl/evp.h>
#include <stdexcept>

namespace token_broker {
namespace {

namespace urls = boost::urls;
namespace json = boost::json;
using clock = std::chrono::steady_clock;

constexpr std::string_view user_agent = "token-broker/" TOKEN_BROKER_VERSION;
constexpr std::size_t max_logged_message = 300;

// An https URL taken apart: where to connect, and the path (and query) to ask for.
struct endpoint_url {
    origin where;
    std::string path;  // encoded, without a trailing '/': "/v2"
    std::string query; // encoded, without '?'
};

endpoint_url parse_endpoint_url(const std::string& text, std::string_view key) {
    auto parsed = urls::parse_uri(text);
    if (!parsed || parsed->scheme_id() != urls::scheme::https || parsed->host_address().empty())
        throw std::invalid_argument(std::string(key) + ": must be an https URL");
    endpoint_url u;
    u.where.host = parsed->host_address();
    u.where.port = parsed->has_port() ? std::string(parsed->port()) : "443";
    u.path = parsed->encoded_path();
    while (!u.path.empty() && u.path.back() == '/')
        u.path.pop_back();
    if (parsed->has_query())
        u.query = parsed->encoded_query();
    return u;
}

// A user id as one path segment. The dot segments "." and ".." have their dots encoded too, so
// that nothing on the way (the client, a proxy, Zoom) can take them for "this" or "the parent".
std::string encode_path_segment(std::string_view user_id) {
    constexpr urls::grammar::lut_chars no_dots = urls::unreserved_chars - '.';
    const bool only_dots = user_id.find_first_not_of('.') == std::string_view::npos;
    return urls::encode(user_id, only_dots ? no_dots : urls::unreserved_chars);
}

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// Text from Zoom made fit for a log line or an error message: no control characters, bounded.
std::string printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, max_logged_message))
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
    if (text.size() > max_logged_message)
        out += "...";
    return out;
}

// Zoom's error body: {"code": 1001, "message": "..."}, or OAuth's {"error": "...", "reason": "..."}.
struct zoom_error_body {
    std::optional<int> code;
    std::string message;
    std::string error;  // OAuth
    std::string reason; // OAuth
};

zoom_error_body parse_error_body(std::string_view body) {
    zoom_error_body e;
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    const auto* obj = ec ? nullptr : v.if_object();
    if (!obj)
        return e;
    auto text = [&](std::string_view key) {
        const auto* s = obj->if_contains(key);
        return s && s->is_string() ? printable(s->get_string()) : std::string();
    };
    if (const auto* c = obj->if_contains("code")) {
        if (c->is_int64() && c->get_int64() >= INT32_MIN && c->get_int64() <= INT32_MAX)
            e.code = static_cast<int>(c->get_int64());
        else if (c->is_uint64() && c->get_uint64() <= INT32_MAX)
            e.code = static_cast<int>(c->get_uint64());
    }
    e.message = text("message");
    e.error = text("error");
    e.reason = text("reason");
    return e;
}

std::string tracking_id(const https_response& res) {
    return printable(res["x-zm-trackingid"]);
}

// The request target without its query, for logs: the query never holds a secret, but logs keep
// to the path and status.
std::string_view path_of(std::string_view target) {
    return target.substr(0, target.find('?'));
}

std::string metric_code(const exchange_result& r) {
    if (r)
        return std::to_string(r->result_int());
    switch (r.error().kind) {
    case transport_failure::unreachable:
        return "unreachable";
    case transport_failure::timeout:
        return "timeout";
    case transport_failure::tls:
        return "tls_error";
    case transport_failure::closed:
    case transport_failure::protocol:
    case transport_failure::cancelled:
        break;
    }
    return "protocol_error";
}

broker_error with_zoom_code(errc code, std::string message, std::optional<int> zoom_code) {
    broker_error e = make_error(code, std::move(message));
    e.zoom_code = zoom_code;
    return e;
}

broker_error rate_limited_error(std::string message, std::chrono::seconds retry_after) {
    broker_error e = make_error(errc::rate_limited, std::move(message));
    e.retry_after = retry_after;
    return e;
}

// "Zoom said: <message> (code N)", or the bare status when Zoom gave no message.
std::string zoom_said(unsigned status, const zoom_error_body& e) {
    std::string s = e.message.empty() ? "HTTP " + std::to_string(status) : e.message;
    if (e.code)
        s += " (code " + std::to_string(*e.code) + ")";
    return s;
}

} // namespace

class zoom_client::impl : public std::enable_shared_from_this<impl> {
public:
    impl(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log, metrics& m)
        : strand_(net::make_strand(std::move(ex))), cfg_(cfg), log_(std::move(log)), metrics_(m),
          api_(parse_endpoint_url(cfg.api_base_url, "zoom.api_base_url")),
          oauth_(parse_endpoint_url(cfg.oauth_token_url, "zoom.oauth_token_url")),
          budget_(cfg.requests_per_second),
          retry_backoff_({milliseconds{100}, milliseconds{2000}, jitter_kind::full}) {
        if (!log_)
            throw std::invalid_argument("zoom_client: a logger is required");
    }

    void start() {
        auto tls = make_tls_client_context(cfg_.ca_file); // may throw: then the client is not started
        if (started_flag_.exchange(true))
            return;
        const https_pool_options opts{cfg_.max_connections, cfg_.connect_timeout};
        auto api_pool = std::make_shared<https_pool>(strand_, tls, api_.where, opts, metrics_);
        // One pool per origin: when the OAuth endpoint shares Zoom's API origin, it shares its pool.
        auto oauth_pool = oauth_.where == api_.where
                              ? api_pool
                              : std::make_shared<https_pool>(strand_, tls, oauth_.where, opts, metrics_);
        if (!cfg_.uses_oauth())
            set_ready(clock::time_point::max());
        else
            set_not_ready("waiting for the first Zoom access token");
        net::dispatch(strand_, [self = shared_from_this(), api_pool, oauth_pool] {
            if (self->stopped_ || self->started_)
                return;
            self->started_ = true;
            self->api_pool_ = api_pool;
            self->oauth_pool_ = oauth_pool;
            if (!self->cfg_.uses_oauth()) {
                self->access_token_ = secret(self->cfg_.access_token);
                self->access_token_expires_ = clock::time_point::max();
                return;
            }
            self->oauth_pending_ = true;
            net::co_spawn(self->strand_, self->oauth_loop(self), [log = self->log_](std::exception_ptr e) {
                if (!e)
                    return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    log->error("Zoom OAuth refresh stopped by an unexpected error: {}", x.what());
                }
            });
        });
    }

    void stop() {
        if (stopped_flag_.exchange(true))
            return;
        {
            std::lock_guard lock(ready_mutex_);
            reason_ = "the Zoom client is stopped";
        }
        net::dispatch(strand_, [self = shared_from_this()] {
            self->stopped_ = true;
            if (self->api_pool_)
                self->api_pool_->shutdown();
            if (self->oauth_pool_)
                self->oauth_pool_->shutdown();
            self->token_changed_.cancel_all();
            self->oauth_wakeup_.cancel_all();
            self->sleepers_.cancel_all();
        });
    }

    readiness ready() const {
        std::lock_guard lock(ready_mutex_);
        if (!stopped_flag_ && clock::now() < ready_until_)
            return {true, {}};
        if (!reason_.empty())
            return {false, reason_};
        return {false,
                started_flag_ ? "the Zoom access token has expired" : "the Zoom client is not started"};
    }

    // Runs on the strand; keeps `self` alive until it completes.
    net::awaitable<result<secret>> fetch(std::shared_ptr<impl> self, token_query q) {
        (void)self;
        co_return co_await do_fetch(std::move(q));
    }

    net::strand<net::any_io_executor> strand_;
    std::atomic<bool> started_flag_{false};

private:
    struct access_grant {
        secret token;
        std::chrono::seconds expires_in;
        clock::time_point requested_at;
    };
    struct current_token {
        secret token;
        std::uint64_t generation;
    };

    // ---- readiness (any thread) ----

    void set_ready(clock::time_point until) {
        std::lock_guard lock(ready_mutex_);
        ready_until_ = until;
        if (!stopped_flag_)
            reason_.clear();
    }

    void set_not_ready(std::string reason) {
        std::lock_guard lock(ready_mutex_);
        ready_until_ = clock::time_point::min();
        if (!stopped_flag_)
            reason_ = std::move(reason);
    }

    // An OAuth failure while a token that has not expired is still held: ready until it expires,
    // with the reason ready for when it does.
    void set_failure_reason(std::string reason) {
        std::lock_guard lock(ready_mutex_);
        if (!stopped_flag_)
            reason_ = std::move(reason);
    }

    // ---- everything below runs on the strand ----

    broker_error stopped_error() const { return make_error(errc::not_ready, "the Zoom client is stopped"); }

    // Sleeps until `t`; false when stop() cut the sleep short.
    net::awaitable<bool> sleep_until(clock::time_point t) {
        co_await sleepers_.wait_until(t);
        co_return !stopped_;
    }

    net::awaitable<result<secret>> do_fetch(token_query q) {
        const auto deadline = clock::now() + cfg_.request_timeout;
        if (stopped_)
            co_return stopped_error();
        if (!started_)
            co_return make_error(errc::not_ready, "the Zoom client is not started");
        if (q.user_id.empty())
            co_return make_error(errc::invalid_request, "the user id is empty");
        const std::string target = token_target(q);
        const std::string_view path = path_of(target);

        if (auto blocked = budget_.blocked_for(clock::now()))
            co_return rate_limited_error("Zoom's rate limit was reached; not calling Zoom until it passes",
                                         *blocked);

        bool renewed_access_token = false;
        unsigned retries = 0;
        for (;;) {
            auto token = co_await access_token(deadline);
            if (!token)
                co_return token.error();

            auto now = clock::now();
            if (auto blocked = budget_.blocked_for(now))
                co_return rate_limited_error(
                    "Zoom's rate limit was reached; not calling Zoom until it passes", *blocked);
            const auto turn = budget_.reserve(now, deadline);
            if (!turn.granted) {
                metrics_.rate_limit_rejected();
                co_return rate_limited_error("the broker's budget of requests to Zoom is spent",
                                             rate_limiter::retry_after(turn.go - now));
            }
            if (turn.go > now) {
                metrics_.rate_limit_wait();
                if (!co_await sleep_until(turn.go))
                    co_return stopped_error();
                // A 429 may have arrived meanwhile.
                if (auto blocked = budget_.blocked_for(clock::now()))
                    co_return rate_limited_error(
                        "Zoom's rate limit was reached; not calling Zoom until it passes", *blocked);
            }

            https_request req{http::verb::get, target, 11};
            req.set(http::field::authorization, "Bearer " + token->token.reveal());
            req.set(http::field::accept, "application/json");
            req.set(http::field::user_agent, user_agent);
            const auto sent = clock::now();
            auto res = co_await api_pool_->exchange(std::move(req), deadline);
            const double seconds = std::chrono::duration<double>(clock::now() - sent).count();
            if (stopped_)
                co_return stopped_error();
            metrics_.upstream_request(upstream_endpoint::token, metric_code(res), seconds);

            if (!res) {
                const auto& e = res.error();
                log_->warn("Zoom token request failed: endpoint=token path={} error=\"{}\"", path, e.message);
                const bool retryable =
                    e.kind == transport_failure::unreachable || e.kind == transport_failure::closed;
                if (retryable && co_await backoff_before_retry(retries, deadline))
                    continue;
                if (stopped_)
                    co_return stopped_error();
                co_return transport_failure_error(e);
            }

            const unsigned status = res->result_int();
            log_->debug("Zoom GET {} -> {}", path, status);
            if (status == 200) {
                auto parsed = parse_token_body(res->body());
                if (!parsed)
                    log_warning(*res, path, {}, parsed.error().message);
                co_return parsed;
            }

            const zoom_error_body body = parse_error_body(res->body());
            log_warning(*res, path, body.code, body.message);
            if (status == 401 && body.code == 124 && cfg_.uses_oauth() && !renewed_access_token) {
                renewed_access_token = true;
                invalidate_access_token(token->generation);
                continue;
            }
            if (status == 429) {
                const auto now_sys = std::chrono::system_clock::now();
                const auto until = parse_retry_after((*res)[http::field::retry_after], now_sys);
                const auto wait =
                    until ? *until - now_sys : std::chrono::system_clock::duration{std::chrono::seconds{1}};
                budget_.block_until(clock::now() + std::chrono::duration_cast<clock::duration>(wait));
                auto e =
                    rate_limited_error("Zoom's rate limit was reached: " + zoom_said(status, body),
                                       budget_.blocked_for(clock::now()).value_or(std::chrono::seconds{1}));
                e.zoom_code = body.code;
                co_return e;
            }
            if (status >= 500 && status <= 599) {
                if (co_await backoff_before_retry(retries, deadline))
                    continue;
                if (stopped_)
                    co_return stopped_error();
                co_return with_zoom_code(errc::upstream_error,
                                         "Zoom failed: " + zoom_said(status, body) + " (after " +
                                             std::to_string(retries + 1) + " attempts)",
                                         body.code);
            }
            if (status == 404)
                co_return with_zoom_code(errc::user_not_found, "Zoom: " + zoom_said(status, body),
                                         body.code.value_or(1001));
            if (status == 400)
                co_return with_zoom_code(errc::upstream_rejected,
                                         "Zoom rejected the request: " + zoom_said(status, body), body.code);
            if (body.code == 4711)
                co_return with_zoom_code(errc::upstream_error,
                                         "Zoom's access token lacks a scope needed for user tokens "
                                         "(user:read:token:admin or user:read:admin): " +
                                             zoom_said(status, body),
                                         body.code);
            if (status == 401)
                co_return with_zoom_code(errc::upstream_error,
                                         "Zoom rejected the access token: " + zoom_said(status, body),
                                         body.code);
            co_return with_zoom_code(errc::upstream_error,
                                     "unexpected answer from Zoom: " + zoom_said(status, body), body.code);
        }
    }

    std::string token_target(const token_query& q) const {
        urls::url u;
        u.set_encoded_path(api_.path + "/users/" + encode_path_segment(q.user_id) + "/token");
        u.params().append({"type", to_string(q.type)});
        if (q.ttl)
            u.params().append({"ttl", std::to_string(*q.ttl)});
        if (q.meeting_id)
            u.params().append({"meeting_id", *q.meeting_id});
        return std::string(u.encoded_target());
    }

    static result<secret> parse_token_body(std::string_view body) {
        boost::system::error_code ec;
        const json::value v = json::parse(body, ec);
        const auto* obj = ec ? nullptr : v.if_object();
        const auto* token = obj ? obj->if_contains("token") : nullptr;
        if (token && token->is_null())
            return make_error(
                errc::token_unavailable,
                "Zoom has no token of this type for the user (e.g. a Google or Facebook login)");
        if (token && token->is_string() && !token->get_string().empty())
            return secret(std::string(token->get_string()));
        // The body is not quoted: it might hold a token.
        return make_error(errc::upstream_error, "Zoom answered 200 without the expected JSON token");
    }

    void log_warning(const https_response& res, std::string_view path, std::optional<int> zoom_code,
                     std::string_view message) const {
        log_->warn("Zoom token request failed: endpoint=token path={} status={} zoom_code={} message=\"{}\" "
                   "x-zm-trackingid={}",
                   path, res.result_int(), zoom_code ? std::to_string(*zoom_code) : "-", message,
                   tracking_id(res));
    }

    broker_error transport_failure_error(const transport_error& e) const {
        switch (e.kind) {
        case transport_failure::unreachable:
            return make_error(errc::upstream_unavailable, "cannot reach Zoom: " + e.message);
        case transport_failure::timeout:
            return make_error(errc::upstream_timeout, "no answer from Zoom within " +
                                                          std::to_string(cfg_.request_timeout.count()) +
                                                          " ms: " + e.message);
        case transport_failure::tls:
            return make_error(errc::upstream_error, "TLS failure talking to Zoom: " + e.message);
        case transport_failure::closed:
        case transport_failure::protocol:
            return make_error(errc::upstream_error, "bad answer from Zoom: " + e.message);
        case transport_failure::cancelled:
            break;
        }
        return stopped_error();
    }

    // Waits before retry number `retries` (then counts it) when zoom.max_retries allows one more and
    // the wait ends before `deadline`. False when no retry is to be made.
    net::awaitable<bool> backoff_before_retry(unsigned& retries, clock::time_point deadline) {
        if (retries >= cfg_.max_retries || stopped_)
            co_return false;
        const auto wake = clock::now() + retry_backoff_.delay(retries);
        if (wake >= deadline)
            co_return false;
        ++retries;
        co_return co_await sleep_until(wake);
    }

    // ---- the access token ----

    // The access token to use, waiting until `deadline` for a fetch under way.
    net::awaitable<result<current_token>> access_token(clock::time_point deadline) {
        for (;;) {
            if (stopped_)
                co_return stopped_error();
            if (access_token_ && clock::now() < access_token_expires_)
                co_return current_token{*access_token_, generation_};
            if (!oauth_pending_ && oauth_failure_.empty() && cfg_.uses_oauth()) {
                // The token has just expired and the loop has not woken up to renew it yet (a
                // lifetime under 5 s leaves no margin): renew it now.
                oauth_pending_ = true;
                oauth_wakeup_.notify_all();
            }
            if (!oauth_pending_)
                co_return make_error(errc::not_ready,
                                     oauth_failure_.empty() ? "no Zoom access token" : oauth_failure_);
            const bool changed = co_await token_changed_.wait_until(deadline);
            if (!changed && !stopped_ && clock::now() >= deadline)
                co_return make_error(errc::upstream_timeout,
                                     "no Zoom access token within " +
                                         std::to_string(cfg_.request_timeout.count()) +
                                         " ms: Zoom's OAuth endpoint is slow to answer");
        }
    }

    // Zoom refused access token number `generation` (401, code 124): drop it and fetch another now,
    // unless that was done already.
    void invalidate_access_token(std::uint64_t generation) {
        if (generation != generation_ || !access_token_)
            return;
        access_token_.reset();
        oauth_pending_ = true;
        set_not_ready("Zoom refused the access token; fetching a new one");
        oauth_wakeup_.notify_all();
    }

    // The single flight of OAuth fetches: only this loop fetches access tokens.
    net::awaitable<void> oauth_loop(std::shared_ptr<impl> self) {
        (void)self;
        unsigned failures = 0;
        while (!stopped_) {
            oauth_pending_ = true;
            auto grant = co_await request_access_token();
            oauth_pending_ = false;
            if (stopped_)
                break;
            clock::time_point next;
            if (grant) {
                failures = 0;
                oauth_failure_.clear();
                const auto lifetime = grant->expires_in;
                const auto margin = std::min<std::chrono::seconds>(std::chrono::seconds{300}, lifetime / 5);
                access_token_ = std::move(grant->token);
                ++generation_;
                access_token_expires_ = grant->requested_at + lifetime;
                next = grant->requested_at + lifetime - margin;
                set_ready(access_token_expires_);
                log_->info("Zoom access token obtained, valid for {} s, renewed in {} s", lifetime.count(),
                           (lifetime - margin).count());
            } else {
                ++failures;
                oauth_failure_ = grant.error().message;
                const auto delay = oauth_retry_delay(failures);
                if (access_token_ && clock::now() < access_token_expires_)
                    set_failure_reason(oauth_failure_);
                else
                    set_not_ready(oauth_failure_);
                log_->warn("{}; trying again in {} s", oauth_failure_, delay.count());
                next = clock::now() + delay;
            }
            token_changed_.notify_all();
            co_await oauth_wakeup_.wait_until(next);
        }
        token_changed_.cancel_all();
    }

    net::awaitable<result<access_grant>> request_access_token() {
        std::string target = oauth_.path.empty() ? "/" : oauth_.path;
        if (!oauth_.query.empty())
            target += "?" + oauth_.query;
        https_request req{http::verb::post, target, 11};
        req.set(http::field::authorization, "Basic " + base64(cfg_.client_id + ":" + cfg_.client_secret));
        req.set(http::field::content_type, "application/x-www-form-urlencoded");
        req.set(http::field::accept, "application/json");
        req.set(http::field::user_agent, user_agent);
        req.body() = "grant_type=account_credentials&account_id=" +
                     urls::encode(cfg_.account_id, urls::unreserved_chars);
        req.prepare_payload();

        const auto sent = clock::now();
        auto res = co_await oauth_pool_->exchange(std::move(req), sent + cfg_.request_timeout);
        const double seconds = std::chrono::duration<double>(clock::now() - sent).count();
        if (stopped_)
            co_return stopped_error();
        metrics_.upstream_request(upstream_endpoint::oauth, metric_code(res), seconds);
        auto failed = [&](std::string why) {
            metrics_.oauth_refresh(false);
            return make_error(errc::not_ready, "Zoom OAuth failed: " + std::move(why));
        };
        if (!res)
            co_return failed(res.error().message);

        const unsigned status = res->result_int();
        log_->debug("Zoom POST {} -> {}", path_of(target), status);
        if (status != 200) {
            const auto body = parse_error_body(res->body());
            log_->warn(
                "Zoom OAuth request failed: endpoint=oauth status={} zoom_code={} error={} reason=\"{}\" "
                "message=\"{}\" x-zm-trackingid={}",
                status, body.code ? std::to_string(*body.code) : "-", body.error.empty() ? "-" : body.error,
                body.reason, body.message, tracking_id(*res));
            if (!body.error.empty() || !body.reason.empty())
                co_return failed(body.error + (body.error.empty() || body.reason.empty() ? "" : ": ") +
                                 body.reason);
            co_return failed(zoom_said(status, body));
        }

        boost::system::error_code ec;
        const json::value v = json::parse(res->body(), ec);
        const auto* obj = ec ? nullptr : v.if_object();
        const auto* token = obj ? obj->if_contains("access_token") : nullptr;
        const auto* expires = obj ? obj->if_contains("expires_in") : nullptr;
        std::int64_t expires_in = 0;
        if (expires && expires->is_int64())
            expires_in = expires->get_int64();
        else if (expires && expires->is_uint64())
            expires_in = static_cast<std::int64_t>(std::min<std::uint64_t>(expires->get_uint64(), INT32_MAX));
        else if (expires && expires->is_double() && expires->get_double() >= 1 &&
                 expires->get_double() < INT32_MAX)
            expires_in = static_cast<std::int64_t>(expires->get_double());
        if (!token || !token->is_string() || token->get_string().empty() || expires_in <= 0) {
            log_->warn("Zoom OAuth request failed: endpoint=oauth status=200 message=\"unexpected answer\" "
                       "x-zm-trackingid={}",
                       tracking_id(*res));
            co_return failed("unexpected answer from the OAuth endpoint");
        }
        metrics_.oauth_refresh(true);
        co_return access_grant{secret(std::string(token->get_string())), std::chrono::seconds{expires_in},
                               sent};
    }

    const zoom_config cfg_;
    const std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_;
    const endpoint_url api_;
    const endpoint_url oauth_;

    // Readiness, read from any thread.
    mutable std::mutex ready_mutex_;
    clock::time_point ready_until_ = clock::time_point::min();
    std::string reason_;
    std::atomic<bool> stopped_flag_{false};

    // On the strand.
    bool started_ = false;
    bool stopped_ = false;
    std::shared_ptr<https_pool> api_pool_;
    std::shared_ptr<https_pool> oauth_pool_;
    rate_limiter budget_;
    backoff retry_backoff_;
    std::optional<secret> access_token_;
    clock::time_point access_token_expires_{};
    std::uint64_t generation_ = 0; // of the access token: which one a 401 refers to
    bool oauth_pending_ = false;   // a fetch is under way or about to start
    std::string oauth_failure_;    // why the last fetch failed
    wait_queue token_changed_;     // callers waiting for an access token
    wait_queue oauth_wakeup_;      // the OAuth loop, sleeping until the next renewal
    wait_queue sleepers_;          // budget waits and retry backoffs
};

zoom_client::zoom_client(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log,
                         metrics& m)
    : impl_(std::make_shared<impl>(std::move(ex), cfg, std::move(log), m)) {}

zoom_client::~zoom_client() {
    stop();
}

void zoom_client::start() {
    impl_->start();
}

void zoom_client::stop() {
    impl_->stop();
}

readiness zoom_client::ready() const {
    return impl_->ready();
}

net::awaitable<result<secret>> zoom_client::fetch_token(token_query q) {
    auto self = impl_;
    co_return co_await net::co_spawn(self->strand_, self->fetch(self, std::move(q)), net::use_awaitable);
}

} // namespace token_broker
