#include "webhook/replay_memory.hpp"

namespace token_broker::webhook {

replay_memory::replay_memory(std::chrono::seconds window, std::size_t max_entries)
    : window_(window), max_entries_(max_entries == 0 ? 1 : max_entries) {}

void replay_memory::expire(std::chrono::seconds now) {
    const long long oldest = static_cast<long long>(now.count()) - static_cast<long long>(window_.count());
    while (!answers_.empty() && answers_.begin()->first.first < oldest)
        answers_.erase(answers_.begin());
}

std::optional<remembered_answer> replay_memory::find(long long timestamp, std::string_view signature,
                                                     std::chrono::seconds now) {
    std::lock_guard lock(mutex_);
    expire(now);
    const auto it = answers_.find(std::pair{timestamp, std::string(signature)});
    if (it == answers_.end())
        return std::nullopt;
    return it->second;
}

void replay_memory::remember(long long timestamp, std::string_view signature, remembered_answer answer,
                             std::chrono::seconds now) {
    if (answer.status >= 500)
        return;
    std::lock_guard lock(mutex_);
    expire(now);
    answers_.insert_or_assign(std::pair{timestamp, std::string(signature)}, std::move(answer));
    while (answers_.size() > max_entries_)
        answers_.erase(answers_.begin());
}

std::size_t replay_memory::size() const {
    std::lock_guard lock(mutex_);
    return answers_.size();
}

} // namespace token_broker::webhook
