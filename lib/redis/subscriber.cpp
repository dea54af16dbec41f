#include "redis/subscriber.hpp"

#include "core/spawn.hpp"
#include "core/tls_client.hpp"
#include "redis/link.hpp"
#include "redis/protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <set>
#include <stdexcept>

namespace token_broker::redis {

std::shared_ptr<subscriber> subscriber::create(net::any_io_executor ex, options o,
                                               std::shared_ptr<spdlog::logger> log,
                                               std::vector<std::string> channels, message_handler on_message,
                                               std::function<void()> on_subscribed) {
    if (channels.empty())
        throw std::invalid_argument("redis::subscriber needs at least one channel");
    return std::shared_ptr<subscriber>(new subscriber(std::move(ex), std::move(o), std::move(log),
                                                      std::move(channels), std::move(on_message),
                                                      std::move(on_subscribed)));
}

subscriber::subscriber(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log,
                       std::vector<std::string> channels, message_handler on_message,
                       std::function<void()> on_subscribed)
    : strand_(net::make_strand(ex)), opts_(std::move(o)), log_(std::move(log)),
      channels_(std::move(channels)), on_message_(std::move(on_message)),
      on_subscribed_(std::move(on_subscribed)),
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
            reason = co_await self->listen(*l);
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

net::awaitable<std::string> subscriber::listen(detail::link& l) {
    std::vector<std::string> command{"SUBSCRIBE"};
    command.insert(command.end(), channels_.begin(), channels_.end());
    if (auto ec = co_await l.write(format_command(std::span<const std::string>(command))))
        co_return "cannot write to redis: " + ec.message();

    std::set<std::string> waiting(channels_.begin(), channels_.end());
    for (;;) {
        auto r = co_await l.read_reply();
        if (stopped_)
            co_return std::string("stopped");
        if (!r)
            co_return r.error().message;
        // Pushes in SUBSCRIBE mode are arrays: [subscribe, channel, count] or [message, channel, payload].
        if (r->type != reply::kind::array || r->elements.size() != 3 ||
            r->elements[0].type != reply::kind::string || r->elements[1].type != reply::kind::string)
            co_return r->is_error() ? "SUBSCRIBE refused: " + r->text
                                    : std::string("redis sent something else than a publication");
        const std::string& what = r->elements[0].text;
        if (what == "message") {
            if (on_message_)
                on_message_(r->elements[1].text, r->elements[2].text);
        } else if (what == "subscribe" && !waiting.empty()) {
            waiting.erase(r->elements[1].text);
            if (waiting.empty()) {
                up_ = true;
                log_->debug("redis subscription at {} is up", where_);
                if (on_subscribed_)
                    on_subscribed_();
            }
        }
    }
}

} // namespace token_broker::redis
