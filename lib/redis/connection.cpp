#include "redis/connection.hpp"

#include "core/spawn.hpp"
#include "metrics/metrics.hpp"
#include "redis/link.hpp"
#include "redis/pipeline.hpp"
#include "redis/protocol.hpp"
#include "redis/reconnecting_link.hpp"
#include "redis/refusals.hpp"
#include "redis/sentinel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <optional>

namespace token_broker::redis {
namespace {

using clock = std::chrono::steady_clock;

} // namespace

namespace detail {

result<reply> unavailable(std::string message) {
    return make_error(errc::cache_unavailable, std::move(message));
}

// NOSCRIPT is EVALSHA asking for the script's text, which script::run then sends with EVAL: the
// exchange goes as planned, so it is not an error.
redis_command_result outcome_of(const result<reply>& r) {
    if (!r)
        return r.error().message.starts_with(no_answer) ? redis_command_result::timeout
                                                        : redis_command_result::error;
    if (r->is_error() && !r->text.starts_with("NOSCRIPT"))
        return redis_command_result::error;
    return redis_command_result::ok;
}

} // namespace detail

using detail::unavailable;

struct connection::pending {
    explicit pending(net::any_io_executor ex) : wake(ex) {}
    net::steady_timer wake;               // expires at the command's deadline; cancelled on completion
    std::optional<result<reply>> outcome; // set once, by the pipeline
};

// One connection's socket and the state machine that decides what its bytes mean.
struct connection::session {
    session(std::shared_ptr<detail::link> l, std::size_t max_reply_bytes)
        : link(std::move(l)), commands(max_reply_bytes) {}
    std::shared_ptr<detail::link> link; // opened: its handshake was accepted
    pipeline commands;                  // queued, written, and waiting for their replies
    bool writing = false;
    bool closed = false;                         // dropped: no more commands
    clock::time_point last_reply = clock::now(); // when bytes last came (the health check's idle time)
    std::string reason;                          // why it was dropped
};

std::shared_ptr<connection> connection::create(net::any_io_executor ex, options o,
                                               std::shared_ptr<spdlog::logger> log, metrics* m) {
    return std::shared_ptr<connection>(new connection(std::move(ex), std::move(o), std::move(log), m));
}

connection::connection(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log, metrics* m)
    : strand_(net::make_strand(ex)), opts_(std::move(o)), log_(std::move(log)), metrics_(m),
      links_(std::make_shared<detail::reconnecting_link>(strand_, opts_, log_)) {}

connection::~connection() = default;

void connection::on_state(std::function<void(bool up)> f) {
    on_state_ = std::move(f);
}

void connection::start() {
    auto self = shared_from_this();
    links_->start([self](std::shared_ptr<detail::link> l) { return use(self, std::move(l)); },
                  [self](const std::string& reason) { self->set_state(false, reason); });
}

void connection::stop() {
    stopped_ = true;
    net::dispatch(strand_, [self = shared_from_this()] {
        self->wake_up_waiters();
        if (self->current_)
            self->drop(*self->current_, "redis connection stopped");
    });
    links_->stop();
}

void connection::set_state(bool up, const std::string& reason) {
    const bool changed = up != up_.load();
    up_ = up;
    if (metrics_)
        metrics_->redis_up(up);
    if (up && changed)
        log_->info("redis at {} is up", links_->where());
    else if (!up && (changed || !reported_))
        log_->warn("redis at {} is down: {}; carrying on without it and reconnecting in the background",
                   links_->where(), reason);
    else if (!up)
        log_->debug("redis at {} still down: {}", links_->where(), reason);
    reported_ = true;
    if (changed && on_state_)
        on_state_(up);
    if (up)
        wake_up_waiters();
}

void connection::wake_up_waiters() {
    for (auto& t : up_waiters_)
        t->cancel();
}

net::awaitable<bool> connection::wait_up(clock::time_point until) {
    if (up() || stopped_ || clock::now() >= until)
        co_return up();
    auto self = shared_from_this();
    co_return co_await net::co_spawn(strand_, self->wait_up_on_strand(until), net::use_awaitable);
}

net::awaitable<bool> connection::wait_up_on_strand(clock::time_point until) {
    if (up_ || stopped_)
        co_return up();
    auto timer = std::make_shared<net::steady_timer>(strand_, until);
    auto it = up_waiters_.insert(up_waiters_.end(), timer);
    co_await timer->async_wait(net::as_tuple(net::use_awaitable));
    up_waiters_.erase(it);
    co_return up();
}

void connection::drop(session& s, const std::string& reason) {
    if (s.closed)
        return;
    s.closed = true;
    s.reason = reason;
    s.link->close();
    s.commands.fail(reason);
    if (up_)
        set_state(false, reason);
}

net::awaitable<detail::link_ended> connection::use(std::shared_ptr<connection> self,
                                                   std::shared_ptr<detail::link> l) {
    if (self->stopped_)
        co_return detail::link_ended{"redis connection stopped", false};
    auto s = std::make_shared<session>(std::move(l), self->opts_.max_reply_bytes);
    self->current_ = s;
    self->set_state(true, {});
    self->links_->keep_checking(s->link, self->opts_.health_check,
                                [self, s] { return self->check_health(s); });
    co_await self->read_replies(s);
    self->current_.reset();
    co_return detail::link_ended{s->reason, true};
}

net::awaitable<void> connection::read_replies(std::shared_ptr<session> s) {
    while (!s->closed) {
        auto bytes = co_await s->link->read_some();
        if (s->closed)
            break;
        if (!bytes) {
            drop(*s, bytes.error().message);
            break;
        }
        s->last_reply = clock::now();
        if (auto failure = s->commands.received(*bytes)) {
            drop(*s, *failure);
            break;
        }
    }
}

void connection::flush(const std::shared_ptr<session>& s) {
    if (s->writing || s->closed)
        return;
    s->writing = true;
    net::co_spawn(strand_, write_queued(s), log_escaped_exception(log_, "redis write"));
}

net::awaitable<void> connection::write_queued(std::shared_ptr<session> s) {
    while (!s->closed) {
        const std::string sending = s->commands.take_output();
        if (sending.empty())
            break;
        if (auto ec = co_await s->link->write(sending)) {
            drop(*s, "cannot write to redis: " + ec.message());
            break;
        }
    }
    s->writing = false;
}

net::awaitable<result<reply>> connection::exec(std::vector<std::string> args) {
    co_return co_await exec(std::move(args), opts_.command_timeout);
}

net::awaitable<result<reply>> connection::exec(std::vector<std::string> args,
                                               std::chrono::milliseconds timeout) {
    // Redis answers nothing to an empty command: it would wait for its deadline and drop the connection.
    if (args.empty())
        co_return unavailable("an empty redis command");
    if (!up()) {
        if (metrics_)
            metrics_->redis_command(redis_command_result::error, 0.0);
        co_return unavailable("redis is not connected");
    }
    auto self = shared_from_this();
    co_return co_await net::co_spawn(strand_, self->exec_on_strand(std::move(args), timeout),
                                     net::use_awaitable);
}

net::awaitable<result<reply>> connection::exec_asking(std::vector<std::string> args) {
    if (args.empty())
        co_return unavailable("an empty redis command");
    if (!up())
        co_return unavailable("redis is not connected");
    auto self = shared_from_this();
    co_return co_await net::co_spawn(
        strand_, self->exec_on_strand(std::move(args), opts_.command_timeout, true), net::use_awaitable);
}

net::awaitable<result<reply>> connection::exec_on_strand(std::vector<std::string> args,
                                                         std::chrono::milliseconds timeout, bool asking) {
    const auto started = clock::now();
    auto s = current_;
    if (!s || s->closed) {
        if (metrics_)
            metrics_->redis_command(redis_command_result::error, 0.0);
        co_return unavailable("redis is not connected");
    }
    auto p = std::make_shared<pending>(strand_);
    p->wake.expires_at(started + timeout);
    if (asking) {
        // Its "+OK" is not waited for: the command's own reply says whether the node took it.
        const std::string command[] = {"ASKING"};
        s->commands.push(format_command(std::span<const std::string>(command)), [](result<reply>) {});
    }
    const auto ticket =
        s->commands.push(format_command(std::span<const std::string>(args)), [p](result<reply> r) {
            p->outcome = std::move(r);
            p->wake.cancel();
        });
    flush(s);
    if (!p->outcome)
        co_await p->wake.async_wait(net::as_tuple(net::use_awaitable));
    auto outcome = redis_command_result::timeout;
    if (!p->outcome) {
        s->commands.abandon(ticket, timeout == opts_.command_timeout
                                        ? std::string(detail::no_answer) + " command_timeout_ms"
                                        : std::string(detail::no_answer) + " " +
                                              std::to_string(timeout.count()) + " ms");
        // A Redis that stalls is dropped rather than waited for: the next commands would stall too.
        drop(*s, "a command took longer than command_timeout_ms");
    } else {
        outcome = detail::outcome_of(*p->outcome);
        if (refusal_report() && *p->outcome && (*p->outcome)->is_error() && is_refusal(**p->outcome))
            refusal_report()->refused("commands", (*p->outcome)->text);
    }
    if (metrics_)
        metrics_->redis_command(outcome, std::chrono::duration<double>(clock::now() - started).count());
    co_return std::move(*p->outcome);
}

net::awaitable<result<void>> connection::confirm_replicated(std::string_view) {
    if (opts_.connect_to != target::sentinel_master)
        co_return result<void>();
    co_return co_await wait_for_replica();
}

net::awaitable<result<void>> connection::wait_for_replica() {
    // WAIT holds up the commands pipelined behind it (the other replicas' confirmations of this very
    // forget among them): it waits half a command_timeout, so that they keep within theirs.
    const auto wait = std::max(opts_.command_timeout / 2, std::chrono::milliseconds(1));
    std::vector<std::string> command{"WAIT", "1", std::to_string(wait.count())};
    auto r = co_await exec(std::move(command), opts_.command_timeout);
    if (!r)
        co_return r.error();
    if (r->type != reply::kind::integer)
        co_return make_error(errc::cache_unavailable,
                             "WAIT answered " + (r->is_error() ? r->text : std::string("something else")));
    if (r->integer < 1)
        co_return make_error(errc::cache_unavailable, "no Redis replica confirmed the write within " +
                                                          std::to_string(wait.count()) + " ms (WAIT)");
    co_return result<void>();
}

void connection::reconnect_now() {
    links_->reconnect_now();
}

net::awaitable<bool> connection::check_health(std::shared_ptr<session> s) {
    if (s->closed)
        co_return false;
    if (clock::now() - s->last_reply < opts_.health_check)
        co_return true;
    const bool role = opts_.connect_to == target::sentinel_master;
    std::vector<std::string> command{role ? "ROLE" : "PING"};
    auto r = co_await exec_on_strand(std::move(command), opts_.command_timeout);
    // Dropped meanwhile for another reason (logged as Redis going): nothing more to say.
    if (s->closed && !(!r && r.error().message.starts_with(detail::no_answer)))
        co_return false;
    std::optional<std::string> wrong;
    if (!r)
        wrong = r.error().message;
    else if (role)
        wrong = role_refusal(*r);
    else if (!r->is_status("PONG"))
        wrong = std::string("PING answered with something else than PONG");
    if (!wrong)
        co_return true;
    log_->warn("redis at {} failed its health check: {}; reconnecting", links_->where(), *wrong);
    drop(*s, "health check: " + *wrong);
    co_return false;
}

} // namespace token_broker::redis
