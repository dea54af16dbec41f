#include "redis/reconnecting_link.hpp"

#include "core/spawn.hpp"
#include "core/tls_client.hpp"
#include "redis/pipeline.hpp"
#include "redis/protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <utility>

namespace token_broker::redis::detail {
namespace {

std::string scheme_of(const options& o) {
    std::string out = o.tls ? "rediss" : "redis";
    if (o.connect_to == target::cluster)
        out += "+cluster";
    else if (o.connect_to != target::server)
        out += "+sentinel";
    return out += "://";
}

std::string host_port(const address& a) {
    return (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
           std::to_string(a.port);
}

std::string describe(const options& o) {
    if (o.connect_to == target::server)
        return scheme_of(o) + host_port({o.host, o.port});
    std::string out = scheme_of(o);
    const auto& nodes = o.connect_to == target::cluster ? o.cluster_seeds : o.sentinels;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        // Appended piece by piece: GCC 12's -Wstringop-overflow misreads `"," + std::string` at -O3.
        if (i > 0)
            out += ',';
        out += host_port(nodes[i]);
    }
    if (o.connect_to == target::cluster)
        return out;
    out += '/';
    return out += o.master_name;
}

} // namespace

// One link opened, and the timer of its health check.
struct reconnecting_link::attempt {
    attempt(net::any_io_executor strand, std::shared_ptr<ssl::context> tls)
        : l(std::make_shared<link>(strand, std::move(tls))), health(strand) {}
    std::shared_ptr<link> l;
    net::steady_timer health;
    bool checked = false; // a health check runs
    bool opened = false;  // l->open() was called (under Sentinel, each master tried gets a new link)
};

reconnecting_link::reconnecting_link(net::any_io_executor strand, options o,
                                     std::shared_ptr<spdlog::logger> log)
    : strand_(std::move(strand)), opts_(std::move(o)), log_(std::move(log)),
      tls_(opts_.tls ? make_tls_client_context(opts_.ca_file, "redis.ca_file") : nullptr),
      where_(describe(opts_)), backoff_(strand_) {
    if (opts_.connect_to == target::sentinel_master || opts_.connect_to == target::sentinels)
        sentinels_.emplace(opts_.sentinels);
}

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
        if (self->asking_)
            self->asking_->close();
        if (self->current_)
            self->current_->l->close();
    });
}

void reconnecting_link::reconnect_now() {
    net::dispatch(strand_, [self = shared_from_this()] {
        self->skip_backoff_ = true;
        self->backoff_.cancel();
        if (self->asking_)
            self->asking_->close();
        if (self->current_)
            self->current_->l->close();
    });
}

net::awaitable<std::optional<std::string>> reconnecting_link::open_next(std::shared_ptr<attempt> a) {
    switch (opts_.connect_to) {
    case target::server:
        break;
    case target::cluster: {
        // A subscription: classic PUBLISH reaches every node of a cluster, so any seed will do, the
        // next one after each failure.
        if (opts_.cluster_seeds.empty())
            co_return "no cluster node to connect to";
        const auto& seed = opts_.cluster_seeds[next_sentinel_ % opts_.cluster_seeds.size()];
        auto node = opts_;
        node.connect_to = target::server;
        node.host = seed.host;
        node.port = seed.port;
        where_ = scheme_of(opts_) + host_port(seed);
        co_return co_await a->l->open(node);
    }
    case target::sentinels: {
        const auto& order = sentinels_->in_order();
        const address at = order[next_sentinel_ % order.size()];
        where_ = scheme_of(opts_) + host_port(at);
        co_return co_await a->l->open(sentinel_link_options(opts_, at));
    }
    case target::sentinel_master: {
        // Each sentinel in turn; the first whose master accepts the handshake, ROLE included, wins.
        std::string reasons;
        std::vector<address> tried;
        const std::vector<address> order = sentinels_->in_order();
        for (std::size_t i = 0; i < order.size() && !stopped_ && !a->l->closed(); ++i) {
            auto answer =
                co_await ask(sentinel_link_options(opts_, order[i]), master_address_query(opts_.master_name));
            auto master = answer ? master_address_of(*answer) : result<address>(answer.error());
            std::string why;
            if (!master) {
                why = master.error().message;
            } else if (std::find(tried.begin(), tried.end(), *master) != tried.end()) {
                why = "named " + host_port(*master) + ", which failed already";
            } else {
                tried.push_back(*master);
                if (a->opened) // a link opens once: a fresh one for each address
                    a->l = std::make_shared<link>(strand_, tls_);
                a->opened = true;
                where_ = scheme_of(opts_) + host_port(*master) + " (master " + opts_.master_name + ")";
                auto refused = co_await a->l->open(master_link_options(opts_, *master));
                if (!refused) {
                    sentinels_->answered(i);
                    co_return std::nullopt;
                }
                why = "named " + host_port(*master) + ": " + *refused;
            }
            if (!reasons.empty())
                reasons += "; ";
            reasons += host_port(order[i]);
            reasons += ": ";
            reasons += why;
        }
        co_return "no sentinel named a master that could be used for " + opts_.master_name + " (" + reasons +
            ")";
    }
    }
    co_return co_await a->l->open(opts_);
}

net::awaitable<result<reply>> reconnecting_link::ask(const options& so, std::vector<std::string> command) {
    auto l = std::make_shared<link>(strand_, tls_);
    asking_ = l;
    struct forget_asking {
        reconnecting_link& self;
        ~forget_asking() { self.asking_.reset(); }
    } on_exit{*this};
    if (stopped_)
        co_return make_error(errc::cache_unavailable, "stopped");
    if (auto why = co_await l->open(so))
        co_return make_error(errc::cache_unavailable, *why);
    auto late = std::make_shared<bool>(false);
    net::steady_timer deadline(strand_);
    deadline.expires_after(so.command_timeout);
    deadline.async_wait([l, late](const beast::error_code& ec) {
        if (!ec) {
            *late = true;
            l->close();
        }
    });
    std::optional<result<reply>> answer;
    pipeline p(so.max_reply_bytes);
    p.push(format_command(std::span<const std::string>(command)), [&answer](result<reply> r) {
        if (!answer)
            answer = std::move(r);
    });
    if (auto ec = co_await l->write(p.take_output()))
        answer = make_error(errc::cache_unavailable, "cannot write: " + ec.message());
    while (!answer) {
        auto bytes = co_await l->read_some();
        if (!bytes)
            answer = bytes.error();
        else if (auto failure = p.received(*bytes))
            answer = make_error(errc::cache_unavailable, *failure);
    }
    deadline.cancel();
    l->close();
    if (*late)
        co_return make_error(errc::cache_unavailable, "no answer within command_timeout_ms");
    co_return std::move(*answer);
}

net::awaitable<void> reconnecting_link::run(std::shared_ptr<reconnecting_link> self, user use,
                                            refused_handler refused) {
    unsigned failures = 0;
    while (!self->stopped_) {
        auto a = std::make_shared<attempt>(self->strand_, self->tls_);
        self->current_ = a;
        link_ended end{{}, false};
        self->skip_backoff_ = false;
        if (auto why = co_await self->open_next(a)) {
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
        if (!end.worked)
            ++self->next_sentinel_;
        if (std::exchange(self->skip_backoff_, false))
            continue;
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
