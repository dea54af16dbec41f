#include "redis/cluster.hpp"

#include "core/spawn.hpp"
#include "core/tls_client.hpp"
#include "metrics/metrics.hpp"
#include "redis/connection.hpp"
#include "redis/link.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>

namespace token_broker::redis {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often the map is asked for while all is well, and while the cluster is down (a failover in
// progress moves slots to a replica that CLUSTER SLOTS names only once it is promoted).
constexpr milliseconds map_period_up{5000};
constexpr milliseconds map_period_down{500};
// After a -MOVED, the next full map is asked for no sooner than this (a migration answers many).
constexpr milliseconds map_gap{50};
// -TRYAGAIN: the first wait, doubled at each one, within the command's deadline.
constexpr milliseconds try_again_first{10};
// "connected_slaves:<n>" of an INFO replication answer; nullopt when it is not there.
std::optional<unsigned> connected_replicas(std::string_view info) {
    constexpr std::string_view field = "connected_slaves:";
    const auto at = info.find(field);
    if (at == std::string_view::npos)
        return std::nullopt;
    unsigned n = 0;
    const char* first = info.data() + at + field.size();
    const auto [end, ec] = std::from_chars(first, info.data() + info.size(), n);
    if (ec != std::errc{} || end == first)
        return std::nullopt;
    return n;
}

// A command is sent at most this many times (redirections included) before it fails.
constexpr int max_hops = 16;

} // namespace

using detail::outcome_of;
using detail::unavailable;

std::shared_ptr<cluster> cluster::create(net::any_io_executor ex, options o,
                                         std::shared_ptr<spdlog::logger> log, metrics* m) {
    return std::shared_ptr<cluster>(new cluster(std::move(ex), std::move(o), std::move(log), m));
}

cluster::cluster(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log, metrics* m)
    : strand_(net::make_strand(ex)), opts_(std::move(o)), log_(std::move(log)), metrics_(m),
      map_timer_(strand_) {
    // The nodes are connected to as servers, each with the cluster's credentials and timeouts. A
    // ca_file that cannot be loaded is said now rather than at the first node.
    opts_.connect_to = target::server;
    if (opts_.tls)
        make_tls_client_context(opts_.ca_file, "redis.ca_file");
}

cluster::~cluster() = default;

void cluster::on_state(std::function<void(bool up)> f) {
    on_state_ = std::move(f);
}

void cluster::start() {
    net::co_spawn(strand_, keep_map(shared_from_this()), log_escaped_exception(log_, "redis cluster map"));
}

void cluster::stop() {
    stopped_ = true;
    std::vector<node_connection> nodes;
    {
        std::lock_guard lock(mutex_);
        nodes.swap(nodes_);
    }
    for (auto& n : nodes)
        n.c->stop();
    net::dispatch(strand_, [self = shared_from_this()] {
        self->map_timer_.cancel();
        self->up_waiters_.wake();
    });
}

void cluster::reconnect_now() {
    std::vector<std::shared_ptr<connection>> nodes;
    {
        std::lock_guard lock(mutex_);
        for (auto& n : nodes_)
            nodes.push_back(n.c);
    }
    for (auto& c : nodes)
        c->reconnect_now();
    want_map();
}

const std::shared_ptr<connection>* cluster::find(const node_address& at) const {
    for (const auto& n : nodes_)
        if (n.at == at)
            return &n.c;
    return nullptr;
}

std::shared_ptr<connection> cluster::node(const node_address& at) {
    std::lock_guard lock(mutex_);
    if (const auto* known = find(at))
        return *known;
    if (stopped_)
        return nullptr;
    auto o = opts_;
    o.host = at.host;
    o.port = at.port;
    auto c = connection::create(strand_, std::move(o), log_);
    c->report_refusals(refusals_shared());
    c->on_state([weak = weak_from_this()](bool up) {
        auto self = weak.lock();
        if (!self)
            return;
        // A master gone may mean a failover: the map is asked for again.
        if (!up)
            self->want_map();
        net::dispatch(self->strand_, [self] {
            // Before the first map the keeper says how it went, once it has one or has failed.
            if (self->has_map())
                self->update_state("a master's connection went down");
        });
    });
    nodes_.push_back({at, c});
    c->start();
    return c;
}

std::optional<cluster::node_connection> cluster::route(std::optional<std::uint16_t> slot) const {
    std::lock_guard lock(mutex_);
    if (!map_)
        return std::nullopt;
    const node_address* master = nullptr;
    if (slot)
        master = map_->master_of(*slot);
    else if (!map_->masters().empty())
        master = &map_->masters().front();
    const auto* c = master ? find(*master) : nullptr;
    if (!c)
        return std::nullopt;
    return node_connection{*master, *c};
}

bool cluster::has_map() const {
    std::lock_guard lock(mutex_);
    return map_ != nullptr;
}

net::awaitable<result<reply>> cluster::exec(std::vector<std::string> args) {
    co_return co_await exec(std::move(args), opts_.command_timeout);
}

net::awaitable<result<reply>> cluster::exec(std::vector<std::string> args, milliseconds timeout) {
    const auto started = clock::now();
    auto r = co_await send(std::move(args), started + timeout);
    if (metrics_)
        metrics_->redis_command(outcome_of(r), std::chrono::duration<double>(clock::now() - started).count());
    co_return r;
}

net::awaitable<result<reply>> cluster::send(std::vector<std::string> args, clock::time_point deadline) {
    if (args.empty())
        co_return unavailable("an empty redis command");
    if (!up())
        co_return unavailable("redis cluster is not connected");
    std::optional<std::uint16_t> slot;
    if (auto key = command_key(args))
        slot = key_slot(*key);
    std::optional<node_address> redirected; // where the last -MOVED or -ASK sent the command
    bool asking = false;
    auto try_again = try_again_first;
    for (int hop = 0; hop < max_hops; ++hop) {
        std::shared_ptr<connection> c;
        node_address at;
        if (redirected) {
            at = *redirected;
            c = node(at);
            if (c && !c->up())
                co_await c->wait_up(deadline);
        } else if (auto master = route(slot)) {
            at = std::move(master->at);
            c = std::move(master->c);
        }
        if (!c)
            co_return unavailable(slot ? "no redis cluster master serves slot " + std::to_string(*slot)
                                       : std::string("no redis cluster master is known"));
        const auto left = std::chrono::ceil<milliseconds>(deadline - clock::now());
        if (left <= milliseconds(0))
            co_return unavailable(std::string(detail::no_answer) + " command_timeout_ms");
        // Not one ?: with a co_await on each side: GCC 12 miscompiles that.
        result<reply> r = unavailable("not sent");
        if (asking)
            r = co_await c->exec_asking(args);
        else
            r = co_await c->exec(args, left);
        asking = false;
        if (!r || !r->is_error())
            co_return r;
        if (auto to = read_redirect(*r, at)) {
            redirected = to->to;
            if (to->what == redirect::kind::ask) {
                asking = true;
                continue;
            }
            {
                std::lock_guard lock(mutex_);
                if (map_) {
                    auto moved = std::make_shared<slot_map>(*map_);
                    moved->move(to->slot, to->to);
                    map_ = std::move(moved);
                }
            }
            want_map();
            continue;
        }
        if (is_try_again(*r)) {
            // The slot is being migrated and the command's keys are split for a moment: shortly again,
            // to the map's master (which answers -ASK if need be).
            redirected.reset();
            net::steady_timer wait(co_await net::this_coro::executor);
            wait.expires_at(std::min(clock::now() + try_again, deadline));
            co_await wait.async_wait(net::as_tuple(net::use_awaitable));
            try_again *= 2;
            continue;
        }
        co_return r;
    }
    co_return unavailable("redis cluster redirected a command " + std::to_string(max_hops) + " times");
}

net::awaitable<result<void>> cluster::confirm_replicated(std::string_view key) {
    const auto slot = key_slot(key);
    const auto master = route(slot);
    if (!master)
        co_return make_error(errc::cache_unavailable,
                             "no redis cluster master serves slot " + std::to_string(slot));
    // Whether the master has replicas now: the map's view may be seconds old, and a replica it does
    // not know of yet can still take over. Any connected replica counts, one still in its first sync
    // too (ROLE lists only those online): WAIT then fails unless it catches up in time.
    std::vector<std::string> info{"INFO", "replication"};
    auto r = co_await master->c->exec(std::move(info));
    if (!r)
        co_return r.error();
    const auto replicas = r->type == reply::kind::string ? connected_replicas(r->text) : std::nullopt;
    if (!replicas)
        co_return make_error(errc::cache_unavailable,
                             "INFO replication did not say how many replicas are connected");
    if (*replicas == 0)
        co_return result<void>();
    co_return co_await master->c->wait_for_replica();
}

void cluster::want_map() {
    map_wanted_ = true;
    net::dispatch(strand_, [self = shared_from_this()] { self->map_timer_.cancel(); });
}

net::awaitable<void> cluster::keep_map(std::shared_ptr<cluster> self) {
    unsigned failures = 0;
    while (!self->stopped_) {
        self->map_wanted_ = false;
        const bool got = co_await self->refresh();
        if (self->stopped_)
            break;
        failures = got ? 0 : failures + 1;
        if (!got)
            self->update_state("no node answered CLUSTER SLOTS");
        auto next = failures > 0 ? detail::retry_delay(failures)
                    : self->up() ? map_period_up
                                 : map_period_down;
        if (failures == 0 && self->map_wanted_)
            next = map_gap;
        self->map_timer_.expires_after(next);
        co_await self->map_timer_.async_wait(net::as_tuple(net::use_awaitable));
        // Woken early by want_map(): never sooner than the gap after the last map.
        if (failures == 0 && !self->stopped_ && self->map_wanted_) {
            self->map_timer_.expires_after(map_gap);
            co_await self->map_timer_.async_wait(net::as_tuple(net::use_awaitable));
        }
    }
}

net::awaitable<bool> cluster::refresh() {
    // The masters already connected first, then the other masters, then the seeds.
    std::vector<node_address> ask;
    {
        std::lock_guard lock(mutex_);
        if (map_) {
            for (const auto& m : map_->masters())
                if (const auto* c = find(m); c && (*c)->up())
                    ask.push_back(m);
            for (const auto& m : map_->masters())
                if (std::find(ask.begin(), ask.end(), m) == ask.end())
                    ask.push_back(m);
        }
    }
    for (const auto& s : opts_.cluster_seeds) {
        const node_address seed{s.host, s.port};
        if (std::find(ask.begin(), ask.end(), seed) == ask.end())
            ask.push_back(seed);
    }
    std::string reasons;
    for (const auto& at : ask) {
        if (stopped_)
            co_return false;
        auto c = node(at);
        if (!c)
            co_return false;
        if (!c->up() && !co_await c->wait_up(clock::now() + opts_.connect_timeout)) {
            reasons += "; " + to_string(at) + " not connected";
            continue;
        }
        std::vector<std::string> command{"CLUSTER", "SLOTS"};
        auto r = co_await c->exec(std::move(command));
        if (!r) {
            reasons += "; " + to_string(at) + ": " + r.error().message;
            continue;
        }
        auto read = slot_map::read(*r, at);
        if (!read) {
            reasons += "; " + to_string(at) + ": " + read.error().message;
            continue;
        }
        if (!read->complete()) {
            reasons += "; " + to_string(at) + ": CLUSTER SLOTS leaves slots without a master";
            continue;
        }
        auto map = std::make_shared<const slot_map>(std::move(*read));
        std::vector<std::shared_ptr<connection>> gone;
        bool changed = false;
        {
            std::lock_guard lock(mutex_);
            changed = !map_ || map_->masters() != map->masters();
            map_ = map;
            std::erase_if(nodes_, [&](const node_connection& n) {
                const auto& masters = map->masters();
                if (std::find(masters.begin(), masters.end(), n.at) != masters.end())
                    return false;
                gone.push_back(n.c);
                return true;
            });
        }
        for (auto& g : gone)
            g->stop();
        for (const auto& m : map->masters())
            node(m);
        if (changed) {
            std::string names;
            for (const auto& m : map->masters()) {
                if (!names.empty())
                    names += ", ";
                names += to_string(m);
            }
            log_->info("redis cluster: {} masters ({})", map->masters().size(), names);
        }
        update_state("a master is not connected");
        co_return true;
    }
    log_->debug("redis cluster: no node answered CLUSTER SLOTS{}", reasons);
    co_return false;
}

void cluster::update_state(std::string why) {
    bool now_up = false;
    {
        std::lock_guard lock(mutex_);
        now_up = !stopped_ && map_ &&
                 std::all_of(map_->masters().begin(), map_->masters().end(), [this](const node_address& m) {
                     const auto* c = find(m);
                     return c && (*c)->up();
                 });
    }
    const bool changed = now_up != up_.load();
    up_ = now_up;
    if (metrics_)
        metrics_->redis_up(now_up);
    if (now_up && changed)
        log_->info("redis cluster is up");
    else if (!now_up && (changed || !reported_) && !stopped_)
        log_->warn("redis cluster is down: {}; carrying on without it and reconnecting in the background",
                   why);
    if (!now_up && !changed && reported_)
        return;
    reported_ = true;
    if (changed && on_state_)
        on_state_(now_up);
    if (now_up)
        up_waiters_.wake();
}

net::awaitable<bool> cluster::wait_up(clock::time_point until) {
    if (up() || stopped_ || clock::now() >= until)
        co_return up();
    auto self = shared_from_this();
    co_return co_await net::co_spawn(strand_, self->wait_up_on_strand(until), net::use_awaitable);
}

net::awaitable<bool> cluster::wait_up_on_strand(clock::time_point until) {
    if (up_ || stopped_)
        co_return up();
    co_await up_waiters_.wait(strand_, until);
    co_return up();
}

} // namespace token_broker::redis
