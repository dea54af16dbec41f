// Hash slots of the key names (CONTRACT.md section 7, "Redis that survives a node"): in a Redis
// Cluster every script and multi-key command must touch keys of one slot. Each list of keys a script
// or command of the shared tier or of the Zoom account is given, built by the functions the
// production code builds it with, is checked here with redis::key_slot, for several users and
// prefixes, with and without a previous encryption key.
#include "cache/shared_keys.hpp"
#include "redis/cluster_map.hpp"
#include "redis/sealed.hpp"
#include "zoom/shared_access_token.hpp"
#include "zoom/shared_budget.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace token_broker {
namespace {

const secret slot_test_key(std::string(32, 'k'));
const secret slot_test_previous_key(std::string(32, 'p'));

const std::vector<std::string> slot_test_prefixes{"token-broker:", "", "acme-prod:", "x"};
const std::vector<std::string> slot_test_users{"alice@example.com", "JDoe@Example.com", "u-12345", "a",
                                               "KdY8s_Q"};

// The one slot of `keys`; fails the test when they are in several (or there are none).
std::uint16_t one_slot(const std::vector<std::string>& keys) {
    std::set<std::uint16_t> slots;
    for (const auto& k : keys)
        slots.insert(redis::key_slot(k));
    EXPECT_EQ(slots.size(), 1u) << "keys in " << slots.size() << " slots, from " << keys.front();
    return slots.empty() ? 0 : *slots.begin();
}

class SharedKeySlots : public ::testing::TestWithParam<bool> {
protected:
    bool rotating() const { return GetParam(); }
    redis::sealer make_sealer() const {
        return redis::sealer(slot_test_key, rotating() ? slot_test_previous_key : secret());
    }
};

TEST_P(SharedKeySlots, EveryScriptOfAUsersCacheKeyTouchesOneSlot) {
    const auto sealer = make_sealer();
    const std::vector<cache_key> keys_of_user = {
        {"", token_type::zak, std::nullopt},
        {"", token_type::zak, 3600},
        {"", token_type::token, std::nullopt},
        {"", token_type::onbehalf, 600},
    };
    for (const auto& prefix : slot_test_prefixes) {
        const shared_key_space space(prefix, sealer);
        for (const auto& user : slot_test_users) {
            SCOPED_TRACE(prefix + " " + user);
            // The forget's calls: one for each encryption key in use, each in its own slot, and the
            // user's every key under that encryption key (the entries of its set included) there.
            const auto user_keys = space.user_keys_of(user);
            ASSERT_EQ(user_keys.size(), rotating() ? 2u : 1u);
            for (const bool revoke : {false, true}) {
                const auto calls = shared_script_keys::forget(user_keys, revoke);
                ASSERT_EQ(calls.size(), user_keys.size());
                for (std::size_t i = 0; i < calls.size(); ++i) {
                    EXPECT_EQ(calls[i].size(), revoke ? 4u : 3u);
                    one_slot(calls[i]);
                }
            }
            const auto forget = shared_script_keys::forget(user_keys, true);
            const auto current_slot = one_slot(forget.front());
            const auto reinstate = shared_script_keys::reinstate(user_keys);
            ASSERT_EQ(reinstate.size(), user_keys.size());
            for (std::size_t i = 0; i < reinstate.size(); ++i)
                EXPECT_EQ(one_slot(reinstate[i]), one_slot(forget[i]));

            for (auto key : keys_of_user) {
                key.user_id = user;
                const auto names = space.names_of(key);
                const auto previous = space.previous_names_of(key);
                ASSERT_EQ(previous.has_value(), rotating());
                // The look: a first look, a waiter's, and the one that only tries the lock.
                for (const bool waiting : {false, true})
                    EXPECT_EQ(one_slot(shared_script_keys::look(
                                  shared_script_keys::look_values(names, waiting), names)),
                              current_slot);
                EXPECT_EQ(one_slot(shared_script_keys::look({}, names)), current_slot);
                // The store, whatever it writes; the entry it adds to the set is in the set's slot,
                // where the forget deletes it.
                for (const std::optional<shared_entry::kind> written :
                     {std::optional<shared_entry::kind>(), std::optional(shared_entry::kind::token),
                      std::optional(shared_entry::kind::unknown_user),
                      std::optional(shared_entry::kind::error)})
                    EXPECT_EQ(one_slot(shared_script_keys::store(names, names.lock, written)), current_slot);
                if (!previous)
                    continue;
                // During a rotation: the look at the previous names, on the slot the second forget
                // call works on.
                EXPECT_EQ(one_slot(shared_script_keys::look_back(*previous)), one_slot(forget.back()));
                EXPECT_EQ(redis::key_slot(previous->entry), one_slot(forget.back()));
            }
        }
    }
}

TEST_P(SharedKeySlots, TheZoomAccountsKeysShareOneSlotOfTheirOwnForEachPrefix) {
    const auto sealer = make_sealer();
    std::set<std::string> names;
    std::set<std::uint16_t> slots;
    for (const auto& prefix : slot_test_prefixes) {
        SCOPED_TRACE(prefix);
        const auto budget = shared_upstream_budget::keys_of(prefix);
        const auto token = shared_access_token_store::keys_of(sealer, prefix, "account-1");
        ASSERT_EQ(token.previous.has_value(), rotating());
        // The budget, the block, the token under both encryption keys (one MGET, one drop script)
        // and its lock: one slot.
        std::vector<std::string> all{budget.budget, budget.block, token.token, token.lock};
        if (token.previous)
            all.push_back(*token.previous);
        const auto slot = one_slot(all);
        slots.insert(slot);
        for (const auto& name : all) {
            EXPECT_TRUE(name.starts_with(prefix)) << name;
            EXPECT_EQ(name.find("account-1"), std::string::npos) << name;
            EXPECT_TRUE(names.insert(name).second) << "two prefixes name " << name;
        }
        // Apart from the users' keys.
        const shared_key_space space(prefix, sealer);
        for (const auto& user : slot_test_users)
            for (const auto& calls : shared_script_keys::forget(space.user_keys_of(user), false))
                EXPECT_NE(one_slot(calls), slot) << user;
    }
    // The prefix is in the hash tag: these deployments' Zoom keys are not all on one slot (for these
    // prefixes, none shares one).
    EXPECT_EQ(slots.size(), slot_test_prefixes.size());
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutAPreviousKey, SharedKeySlots, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return i.param ? "Rotating" : "OneKey";
                         });

} // namespace
} // namespace token_broker
