#include "redis/subscriber.hpp"

#include "core/spawn.hpp"
#include "core/tls_client.hpp"
#include "redis/link.hpp"
#include "redis/refusals.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

namespace token_broker::redis {

std::shared_ptr<subscriber> subscriber::create(net::any_io_executor ex, options o,
                                               std::shared_ptr<spdlog::logger> log,
                                               std::vector<std::string> channels, message_handler on_message,
                                               std::function<void()> on_subscribed,
                                               std::chrono::milliseconds health_check,
                                               alive_handler on_alive) {
    if (channels.empty())
        throw std::invalid_argument("redis::subscriber needs at least one channel");
    return std::shared_ptr<subscriber>(
        new subscriber(std::move(ex), std::move(o), std::move(log), std::move(channels),
                       std::move(on_message), std::move(on_subscribed), health_check, std::move(on_alive)));
}

// What the listener and the health check of one subscribed connection share.
struct subscriber::health {
    health(net::any_io_executor ex, std::vector<std::string> channels, std::size_t max_reply_bytes)
        : timer(std::move(ex)), state(std::move(channels), max_reply_bytes) {}
    net::steady_timer timer;
    subscription state;
    bool over = false; // the connection is gone: stop pinging
};

subscriber::subscriber(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log,
                       std::vector<std::string> channels, message_handler on_message,
                       std::function<void()> on_subscribed, std::chrono::milliseconds health_check,
                       alive_handler on_alive)
    : strand_(net::make_strand(ex)), opts_(std::move(o)), log_(std::move(log)),
      channels_(std::move(channels)), on_message_(std::move(on_message)),
      on_subscribed_(std::move(on_subscribed)), health_check_(health_check), on_alive_(std::move(on_alive)),
      tls_(opts_.tls ? make_tls_client_context(opts_.ca_file, "redis.ca_file") : nullptr),
      where_((opts_.tls ? "rediss://" : "redis://") + opts_.host + ":" + std::to_string(opts_.port)),
      backoff_(strand_) {}

subscriber::~subscriber() = default;

void subscriber::start() {
    net::dispatch(strand_, [self = shared_from_this()] {
        if (self->started_ || self->stopped_)
            return;
        self->started_ = true;
        net::co_spawn(self->strand_, run(self), log_escaped_exception(self->log_, "redis subscriber"));
    });
}

void subscriber::stop() {
    stopped_ = true;
    net::dispatch(strand_, [self = shared_from_this()] {
        self->backoff_.cancel();
        if (self->current_)
            self->current_->close();
        self->up_ = false;
    });
}

net::awaitable<void> subscriber::run(std::shared_ptr<subscriber> self) {
    unsigned failures = 0;
    while (!self->stopped_) {
        auto l = std::make_shared<detail::link>(self->strand_, self->tls_);
        self->current_ = l;
        std::string reason;
        if (auto refused = co_await l->open(self->opts_)) {
            reason = *refused;
        } else {
            // A login that succeeds but cannot subscribe is a failure like any other: the backoff goes
            // on growing, rather than reconnecting ten times a second.
            bool subscribed = false;
            reason = co_await self->listen(l, subscribed);
            if (subscribed)
                failures = 0;
        }
        l->close();
        self->current_.reset();
        self->up_ = false;
        if (self->stopped_)
            break;
        self->log_->debug("redis subscription at {} is down: {}", self->where_, reason);
        self->backoff_.expires_after(detail::retry_delay(++failures));
        co_await self->backoff_.async_wait(net::as_tuple(net::use_awaitable));
    }
    self->up_ = false;
}

net::awaitable<std::string> subscriber::listen(std::shared_ptr<detail::link> l, bool& subscribed) {
    auto h = std::make_shared<health>(strand_, channels_, opts_.max_reply_bytes);
    struct stop_pinging {
        std::shared_ptr<health> h;
        ~stop_pinging() {
            h->over = true;
            h->timer.cancel();
        }
    } stop{h};
    if (auto ec = co_await l->write(h->state.subscribe(std::chrono::steady_clock::now())))
        co_return "cannot write to redis: " + ec.message();
    for (;;) {
        auto bytes = co_await l->read_some();
        if (stopped_)
            co_return std::string("stopped");
        if (!bytes)
            co_return bytes.error().message;
        auto out = h->state.received(*bytes);
        for (auto& e : out.events)
            handle(e, l, h, subscribed);
        if (out.failure) {
            if (out.refused && refusals_)
                refusals_->refused("subscription", *out.failure);
            co_return *out.failure;
        }
    }
}

void subscriber::handle(const subscription::event& e, const std::shared_ptr<detail::link>& l,
                        const std::shared_ptr<health>& h, bool& subscribed) {
    switch (e.type) {
    case subscription::event::kind::message:
        if (on_message_)
            on_message_(e.channel, e.payload);
        break;
    case subscription::event::kind::alive:
        if (on_alive_)
            on_alive_(e.sent);
        break;
    case subscription::event::kind::subscribed:
        up_ = true;
        subscribed = true;
        if (refusals_)
            refusals_->accepted("subscription");
        log_->debug("redis subscription at {} is up", where_);
        if (on_subscribed_)
            on_subscribed_();
        if (health_check_.count() > 0)
            net::co_spawn(strand_, ping(shared_from_this(), l, h),
                          log_escaped_exception(log_, "redis subscription health check"));
        break;
    }
}

net::awaitable<void> subscriber::ping(std::shared_ptr<subscriber> self, std::shared_ptr<detail::link> l,
                                      std::shared_ptr<health> h) {
    while (!h->over && !self->stopped_) {
        h->timer.expires_after(self->health_check_);
        co_await h->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (h->over || self->stopped_)
            break;
        auto ping = h->state.ping(std::chrono::steady_clock::now());
        if (!ping) {
            self->log_->warn("redis subscription at {} did not answer a PING within {} ms: reconnecting",
                             self->where_, self->health_check_.count());
            l->close();
            break;
        }
        if (auto ec = co_await l->write(*ping)) {
            l->close();
            break;
        }
    }
}

} // namespace token_broker::redis
