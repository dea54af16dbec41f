#include "cache/token_cache.hpp"

#include "cache/jwt.hpp"

#include <algorithm>
#include <functional>

namespace token_broker {

namespace chrono = std::chrono;

std::size_t cache_key_hash::operator()(cache_key_view key) const noexcept {
    // An absent ttl hashes apart from every present one, 0 included.
    const std::uint64_t ttl = key.ttl ? std::uint64_t{*key.ttl} + 1 : 0;
    std::uint64_t h = std::hash<std::string_view>{}(key.user_id);
    for (std::uint64_t part : {static_cast<std::uint64_t>(key.type), ttl}) {
        h ^= part + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    }
    return static_cast<std::size_t>(h);
}

chrono::seconds default_lifetime(token_type type) noexcept {
    return type == token_type::token ? default_token_lifetime : default_zak_lifetime;
}

time_point token_expiry(std::string_view token, token_type type, std::optional<std::uint32_t> ttl,
                        time_point fetched_at) noexcept {
    if (const std::optional<std::int64_t> exp = jwt_expiry(token)) {
        constexpr auto representable = chrono::floor<chrono::seconds>(time_point::max().time_since_epoch());
        if (*exp <= representable.count())
            return time_point(chrono::seconds(*exp));
    }
    return fetched_at + (ttl ? chrono::seconds(*ttl) : default_lifetime(type));
}

chrono::seconds refresh_margin(time_point fetched_at, time_point expires_at,
                               chrono::seconds configured) noexcept {
    // Whole seconds on both sides: no overflow whatever the two times are.
    const auto lifetime = chrono::floor<chrono::seconds>(expires_at.time_since_epoch()) -
                          chrono::floor<chrono::seconds>(fetched_at.time_since_epoch());
    if (lifetime <= chrono::seconds::zero() || configured <= chrono::seconds::zero())
        return chrono::seconds::zero();
    return std::min(configured, lifetime / 5);
}

// token_cache

token_cache::token_cache(std::size_t max_entries, chrono::seconds refresh_margin)
    : max_entries_(max_entries), configured_margin_(refresh_margin) {}

token_cache::~token_cache() = default;

token_cache::entry* token_cache::lookup(cache_key_view key) const noexcept {
    const auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : it->get();
}

std::optional<token_cache::hit> token_cache::find(cache_key_view key, time_point now) {
    if (key.type == token_type::onbehalf)
        return std::nullopt;
    entry* e = lookup(key);
    if (!e)
        return std::nullopt;
    if (now >= e->value.expires_at) {
        remove(e);
        return std::nullopt;
    }
    if (now >= e->value.serve_until())
        return std::nullopt; // kept for find_stale until it expires
    touch(e);
    return hit{&e->value, now >= e->value.refresh_from()};
}

const cached_token* token_cache::find_stale(cache_key_view key, time_point now) const {
    if (key.type == token_type::onbehalf)
        return nullptr;
    const entry* e = lookup(key);
    if (!e || e->value.expires_at - now < stale_min_validity)
        return nullptr;
    return &e->value;
}

void token_cache::put(cache_key key, secret token, time_point fetched_at, time_point expires_at) {
    if (key.type == token_type::onbehalf)
        return;
    cached_token value{std::move(token), fetched_at, expires_at,
                       refresh_margin(fetched_at, expires_at, configured_margin_)};
    if (entry* e = lookup(key)) {
        e->value = std::move(value);
        touch(e);
        return;
    }
    auto owned = std::make_unique<entry>();
    owned->key = std::move(key);
    owned->value = std::move(value);
    entry* e = owned.get();
    link_user(e); // may throw (allocation): nothing else is changed yet
    try {
        entries_.insert(std::move(owned));
    } catch (...) {
        unlink_user(e);
        throw;
    }
    link_newest(e);
    while (entries_.size() > max_entries_)
        remove(oldest_);
}

std::size_t token_cache::erase_user(std::string_view user_id) {
    const auto it = users_.find(user_id);
    if (it == users_.end())
        return 0;
    entry* e = it->second;
    users_.erase(it); // first: its key views the user id of an entry about to go
    std::size_t erased = 0;
    while (e) {
        entry* next = e->user_next;
        unlink_lru(e);
        entries_.erase(entries_.find(cache_key_view(e->key)));
        e = next;
        ++erased;
    }
    return erased;
}

void token_cache::clear() noexcept {
    users_.clear();
    entries_.clear();
    newest_ = oldest_ = nullptr;
}

void token_cache::touch(entry* e) noexcept {
    if (e == newest_)
        return;
    unlink_lru(e);
    link_newest(e);
}

void token_cache::link_newest(entry* e) noexcept {
    e->newer = nullptr;
    e->older = newest_;
    if (newest_)
        newest_->newer = e;
    newest_ = e;
    if (!oldest_)
        oldest_ = e;
}

void token_cache::unlink_lru(entry* e) noexcept {
    (e->newer ? e->newer->older : newest_) = e->older;
    (e->older ? e->older->newer : oldest_) = e->newer;
    e->newer = e->older = nullptr;
}

void token_cache::link_user(entry* e) {
    const auto [it, inserted] = users_.try_emplace(std::string_view(e->key.user_id), e);
    if (inserted)
        return;
    // Second and later entries of a user go after the first, so the index key stays valid.
    entry* first = it->second;
    e->user_prev = first;
    e->user_next = first->user_next;
    if (first->user_next)
        first->user_next->user_prev = e;
    first->user_next = e;
}

void token_cache::unlink_user(entry* e) noexcept {
    if (e->user_prev) {
        e->user_prev->user_next = e->user_next;
        if (e->user_next)
            e->user_next->user_prev = e->user_prev;
    } else if (e->user_next) {
        // The user's first entry, with others: the index now views the next one's user id. Re-keying
        // through a node handle does not allocate.
        auto node = users_.extract(e->key.user_id);
        node.key() = e->user_next->key.user_id;
        node.mapped() = e->user_next;
        e->user_next->user_prev = nullptr;
        users_.insert(std::move(node));
    } else {
        users_.erase(e->key.user_id);
    }
    e->user_next = e->user_prev = nullptr;
}

void token_cache::remove(entry* e) noexcept {
    unlink_lru(e);
    unlink_user(e);
    entries_.erase(entries_.find(cache_key_view(e->key)));
}

// negative_cache

negative_cache::negative_cache(std::size_t max_entries, chrono::seconds ttl)
    : max_entries_(max_entries), ttl_(ttl) {}

bool negative_cache::contains(std::string_view user_id, time_point now) {
    const auto it = index_.find(user_id);
    if (it == index_.end())
        return false;
    if (now < it->second->until)
        return true;
    const auto record = it->second;
    index_.erase(it);
    records_.erase(record);
    return false;
}

void negative_cache::remember(std::string user_id, time_point now) {
    if (ttl_ <= chrono::seconds::zero() || max_entries_ == 0)
        return;
    while (!records_.empty() && records_.front().until <= now) {
        index_.erase(records_.front().user_id);
        records_.pop_front();
    }
    if (const auto it = index_.find(user_id); it != index_.end()) {
        it->second->until = now + ttl_;
        records_.splice(records_.end(), records_, it->second); // nodes, and so the index keys, stay put
        return;
    }
    records_.push_back(record{std::move(user_id), now + ttl_});
    try {
        index_.emplace(records_.back().user_id, std::prev(records_.end()));
    } catch (...) {
        records_.pop_back();
        throw;
    }
    if (records_.size() > max_entries_) {
        index_.erase(records_.front().user_id);
        records_.pop_front();
    }
}

void negative_cache::forget(std::string_view user_id) {
    const auto it = index_.find(user_id);
    if (it == index_.end())
        return;
    const auto record = it->second;
    index_.erase(it);
    records_.erase(record);
}

void negative_cache::clear() noexcept {
    index_.clear();
    records_.clear();
}

} // namespace token_broker
