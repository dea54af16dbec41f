#include "cache/replica_membership.hpp"

#include "cache/shared_scripts.hpp"
#include "core/spawn.hpp"
#include "redis/client.hpp"
#include "redis/lease.hpp"
#include "redis/refusals.hpp"

#include <boost/asio/co_spawn.hpp>

namespace token_broker {
namespace {

std::int64_t ticks(replica_membership::steady::time_point t) {
    return t.time_since_epoch().count();
}

} // namespace

replica_membership::replica_membership(net::any_io_executor ex, std::shared_ptr<redis::client> connection,
                                       std::string members_key, std::chrono::milliseconds lease,
                                       std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(ex)), connection_(std::move(connection)), members_key_(std::move(members_key)),
      id_(redis::random_value()), lease_(lease), log_(std::move(log)),
      liveness_(std::make_shared<liveness>()) {}

std::chrono::milliseconds replica_membership::health_check_interval() const noexcept {
    return std::max(lease_ / 3, std::chrono::milliseconds{1});
}

void replica_membership::on_alive(steady::time_point sent) {
    net::co_spawn(executor_, renew(connection_, liveness_, members_key_, id_, lease_, sent),
                  log_escaped_exception(log_, "renewing this replica's registration"));
}

net::awaitable<void> replica_membership::renew(std::shared_ptr<redis::client> connection,
                                               std::shared_ptr<liveness> live, std::string members_key,
                                               std::string id, std::chrono::milliseconds lease,
                                               steady::time_point sent) {
    std::vector<std::string> keys{std::move(members_key)};
    std::vector<std::string> args{std::move(id), std::to_string(lease.count())};
    auto r = co_await shared_scripts::register_replica().run(*connection, std::move(keys), std::move(args));
    if (!r || r->is_error())
        co_return;
    // A write by script went through: whatever Redis refused the commands before, it accepts now.
    if (auto* refused = connection->refusal_report())
        refused->accepted("commands");
    // The registration now lasts at least until sent + lease (Redis ran it after the PING was sent).
    const auto until = ticks(sent + lease);
    auto seen = live->valid_until.load(std::memory_order_acquire);
    while (seen < until && !live->valid_until.compare_exchange_weak(seen, until, std::memory_order_acq_rel)) {
    }
}

bool replica_membership::local_copies_allowed() noexcept {
    const bool up = connection_->up();
    if (last_up_.exchange(up, std::memory_order_acq_rel) != up)
        return false;
    if (!up)
        return true;
    return ticks(steady::now()) < liveness_->valid_until.load(std::memory_order_acquire);
}

} // namespace token_broker
