#include "redis/reconnecting_link.hpp"

#include "core/spawn.hpp"
#include "core/tls_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace token_broker::redis::detail {

// One link opened, and the timer of its health check.
struct reconnecting_link::attempt {
    attempt(net::any_io_executor strand, std::shared_ptr<ssl::context> tls)
        : l(std::make_shared<link>(strand, std::move(tls))), health(strand) {}
    std::shared_ptr<link> l;
    net::steady_timer health;
    bool checked = false; // a health check runs
};

reconnecting_link::reconnecting_link(net::any_io_executor strand, options o,
                                     std::shared_ptr<spdlog::logger> log)
    : strand_(std::move(strand)), opts_(std::move(o)), log_(std::move(log)),
      tls_(opts_.tls ? make_tls_client_context(opts_.ca_file, "redis.ca_file") : nullptr),
      where_((opts_.tls ? "rediss://" : "redis://") + opts_.host + ":" + std::to_string(opts_.port)),
      backoff_(strand_) {}

void reconnecting_link::start(user use, refused_handler refused) {
    net::dispatch(strand_, [self = shared_from_this(), use = std::move(use), refused = std::move(refused)] {
        if (self->started_ || self->stopped_)
            return;
        self->started_ = true;
        net::co_spawn(self->strand_, run(self, use, refused),
                      log_escaped_exception(self->log_, "redis link"));
    });
}

void reconnecting_link::stop() {
    stopped_ = true;
    net::dispatch(strand_, [self = shared_from_this()] {
        self->backoff_.cancel();
        if (self->current_)
            self->current_->l->close();
    });
}

net::awaitable<void> reconnecting_link::run(std::shared_ptr<reconnecting_link> self, user use,
                                            refused_handler refused) {
    unsigned failures = 0;
    while (!self->stopped_) {
        auto a = std::make_shared<attempt>(self->strand_, self->tls_);
        self->current_ = a;
        link_ended end{{}, false};
        if (auto why = co_await a->l->open(self->opts_)) {
            if (!self->stopped_)
                refused(*why);
        } else if (!self->stopped_) {
            end = co_await use(a->l);
        }
        a->l->close();
        a->health.cancel();
        self->current_.reset();
        if (self->stopped_)
            break;
        failures = end.worked ? 1 : failures + 1;
        self->backoff_.expires_after(retry_delay(failures));
        co_await self->backoff_.async_wait(net::as_tuple(net::use_awaitable));
    }
}

void reconnecting_link::keep_checking(const std::shared_ptr<link>& l, std::chrono::milliseconds interval,
                                      health_check check) {
    if (!current_ || current_->l != l || current_->checked || interval.count() <= 0)
        return;
    current_->checked = true;
    net::co_spawn(strand_, check_while_current(shared_from_this(), current_, interval, std::move(check)),
                  log_escaped_exception(log_, "redis health check"));
}

net::awaitable<void> reconnecting_link::check_while_current(std::shared_ptr<reconnecting_link> self,
                                                            std::shared_ptr<attempt> a,
                                                            std::chrono::milliseconds interval,
                                                            health_check check) {
    const auto current = [&] { return self->current_ == a && !self->stopped_; };
    while (current()) {
        a->health.expires_after(interval);
        co_await a->health.async_wait(net::as_tuple(net::use_awaitable));
        if (!current())
            break;
        if (!co_await check()) {
            a->l->close();
            break;
        }
    }
}

} // namespace token_broker::redis::detail
