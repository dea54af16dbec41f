#include "redis/subscriber.hpp"

#include "redis/link.hpp"
#include "redis/reconnecting_link.hpp"
#include "redis/refusals.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

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

subscriber::subscriber(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log,
                       std::vector<std::string> channels, message_handler on_message,
                       std::function<void()> on_subscribed, std::chrono::milliseconds health_check,
                       alive_handler on_alive)
    : strand_(net::make_strand(ex)), opts_(std::move(o)), log_(std::move(log)),
      channels_(std::move(channels)), on_message_(std::move(on_message)),
      on_subscribed_(std::move(on_subscribed)), health_check_(health_check), on_alive_(std::move(on_alive)),
      links_(std::make_shared<detail::reconnecting_link>(strand_, opts_, log_)) {}

subscriber::~subscriber() = default;

void subscriber::start() {
    auto self = shared_from_this();
    links_->start([self](std::shared_ptr<detail::link> l) { return use(self, std::move(l)); },
                  [self](const std::string& reason) {
                      self->log_->debug("redis subscription at {} is down: {}", self->links_->where(),
                                        reason);
                  });
}

void subscriber::stop() {
    stopped_ = true;
    links_->stop();
    net::dispatch(strand_, [self = shared_from_this()] { self->up_ = false; });
}

void subscriber::reconnect_now() {
    links_->reconnect_now();
}

net::awaitable<detail::link_ended> subscriber::use(std::shared_ptr<subscriber> self,
                                                   std::shared_ptr<detail::link> l) {
    // A login that succeeds but cannot subscribe is a failure like any other: the backoff goes on
    // growing, rather than reconnecting ten times a second.
    bool subscribed = false;
    auto reason = co_await self->listen(std::move(l), subscribed);
    self->up_ = false;
    if (!self->stopped_)
        self->log_->debug("redis subscription at {} is down: {}", self->links_->where(), reason);
    co_return detail::link_ended{std::move(reason), subscribed};
}

net::awaitable<std::string> subscriber::listen(std::shared_ptr<detail::link> l, bool& subscribed) {
    auto state = std::make_shared<subscription>(channels_, opts_.max_reply_bytes);
    if (auto ec = co_await l->write(state->subscribe(std::chrono::steady_clock::now())))
        co_return "cannot write to redis: " + ec.message();
    for (;;) {
        auto bytes = co_await l->read_some();
        if (stopped_)
            co_return std::string("stopped");
        if (!bytes)
            co_return bytes.error().message;
        auto out = state->received(*bytes);
        for (auto& e : out.events)
            handle(e, l, state, subscribed);
        if (out.failure) {
            if (out.refused && refusals_)
                refusals_->refused("subscription", *out.failure);
            co_return *out.failure;
        }
    }
}

void subscriber::handle(const subscription::event& e, const std::shared_ptr<detail::link>& l,
                        const std::shared_ptr<subscription>& state, bool& subscribed) {
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
        log_->debug("redis subscription at {} is up", links_->where());
        if (on_subscribed_)
            on_subscribed_();
        links_->keep_checking(l, health_check_,
                              [self = shared_from_this(), l, state] { return ping(self, l, state); });
        break;
    }
}

net::awaitable<bool> subscriber::ping(std::shared_ptr<subscriber> self, std::shared_ptr<detail::link> l,
                                      std::shared_ptr<subscription> state) {
    auto ping = state->ping(std::chrono::steady_clock::now());
    if (!ping) {
        self->log_->warn("redis subscription at {} did not answer a PING within {} ms: reconnecting",
                         self->links_->where(), self->health_check_.count());
        co_return false;
    }
    auto ec = co_await l->write(*ping);
    co_return !ec;
}

} // namespace token_broker::redis
