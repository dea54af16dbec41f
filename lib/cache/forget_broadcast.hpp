// The forget broadcast (CONTRACT.md section 7, "Forgetting is certain", and section 9's revocations):
// a forget removes a user's entries from Redis under every encryption key in use, bumps the user's
// generation (so no fetch that started before it can store after it), then publishes on P forget;
// every registered replica drops its copies, removes the entries named under its own keys and
// confirms on P forgotten; the forget is answered once every replica registered when it ran has
// confirmed, or has let its registration lapse (and so dropped its copies).
//
// In Redis that is one script call for each encryption key in use (each key's names are in a hash
// slot of their own), the last one publishing, then a read of the registrations (P replicas, a slot
// of its own), then a WAIT for each slot written.
//
// Messages. On P forget: a 32-digit random nonce in clear, ':', for a revocation "revoke=<ms>:" and
// for a reinstatement "reinstate:", then the user id sealed (redis::sealer) with the channel's name,
// ':' and everything before it as associated data, so that the tag cannot be changed. On
// P forgotten: the nonce, ':', the confirming replica's id.
#pragma once

#include "cache/news_waiter.hpp"
#include "cache/replica_membership.hpp"
#include "cache/shared_keys.hpp"
#include "core/error.hpp"
#include "core/net.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace token_broker {

namespace redis {
class client;
class sealer;
} // namespace redis

// A message on P forget, read (the seal is not opened here): nullopt when it has no nonce.
// `head` is what the seal's associated data holds after the channel's name and ':'.
struct forget_message {
    std::string_view nonce;
    std::string_view head; // the nonce, and the tag when there is one
    std::string_view sealed;
    std::chrono::milliseconds revoked_for{0}; // a revocation for that long; 0: none
    bool reinstate = false;                   // a revoked mark cleared: nothing forgotten
};
inline constexpr std::string_view revoke_tag = "revoke=";
inline constexpr std::string_view reinstate_tag = "reinstate";
std::optional<forget_message> read_forget_message(std::string_view message);

class forget_broadcast {
public:
    // Keeps references to `sealer`, `keys` and `membership`, which must outlive it. A forget waits
    // for confirmations at most `confirm_timeout`.
    forget_broadcast(net::any_io_executor ex, std::shared_ptr<redis::client> connection,
                     const redis::sealer& sealer, const shared_key_space& keys,
                     const replica_membership& membership, std::chrono::milliseconds confirm_timeout,
                     std::shared_ptr<spdlog::logger> log);
    ~forget_broadcast();
    forget_broadcast(const forget_broadcast&) = delete;
    forget_broadcast& operator=(const forget_broadcast&) = delete;

    const std::string& channel() const noexcept { return channel_; }                        // P forget
    const std::string& confirmation_channel() const noexcept { return confirmed_channel_; } // P forgotten

    // Forgets `user_id` everywhere; with `revoked_for` > 0, also sets its revoked marks for that long.
    // errc::cache_unavailable when Redis fails or a live replica does not confirm in time.
    net::awaitable<result<void>> forget(std::string user_id, std::chrono::milliseconds revoked_for);
    // Clears `user_id`'s revoked marks and tells the replicas (nothing to confirm).
    net::awaitable<result<void>> reinstate(std::string user_id);

    // A message heard on P forget, opened. `user_id` is nullopt when the seal does not open (a key
    // this replica does not have during a rotation, tampering, a tag it does not know): whose tokens
    // to drop is then unknown.
    struct heard {
        std::string nonce;
        std::optional<std::string> user_id;
        std::chrono::milliseconds revoked_for{0};
        bool reinstate = false;
    };
    // nullopt for a message that is not a forget at all (no nonce): ignored.
    std::optional<heard> hear(std::string_view message) const;
    // After the copies are dropped: removes the user's entries named under this replica's keys (and
    // sets its revoked marks under them), then confirms to the replica that asked. In the background;
    // the work holds what it uses, so it may finish after this object is gone. Not for reinstatements.
    void confirm(const heard& h) const;

    // A message heard on P forgotten: counts the confirmation for the forget under way, if any.
    void on_confirmation(std::string_view message);

private:
    // The forget script's calls for a user under this replica's keys, one for each encryption key.
    std::vector<std::vector<std::string>> calls_of(const std::string& user_id,
                                                   std::chrono::milliseconds revoked_for) const;
    static net::awaitable<void> acknowledge(std::shared_ptr<redis::client> connection,
                                            std::shared_ptr<spdlog::logger> log,
                                            std::vector<std::vector<std::string>> calls,
                                            std::chrono::milliseconds revoked_for,
                                            std::string confirmed_channel, std::string confirmation);

    struct confirmations;
    class pending;

    net::any_io_executor executor_;
    std::shared_ptr<redis::client> connection_;
    const redis::sealer& sealer_;
    const shared_key_space& keys_;
    const replica_membership& membership_;
    std::chrono::milliseconds confirm_timeout_;
    std::shared_ptr<spdlog::logger> log_;
    std::string channel_, confirmed_channel_;

    std::mutex mutex_;                                                        // guards pending_
    std::unordered_map<std::string, std::shared_ptr<confirmations>> pending_; // by nonce
};

} // namespace token_broker
