#include "redis/protocol.hpp"

#include <hiredis/hiredis.h>
#include <new>
#include <utility>
#include <vector>

namespace token_broker::redis {

namespace detail {

// What the reply being read holds so far (protocol.hpp, the budget).
struct reply_budget {
    std::size_t limit;
    std::size_t used = 0;  // by the reply objects built so far
    bool exceeded = false; // an object was refused for it
};

} // namespace detail

namespace {

using detail::reply_budget;

// hiredis builds each reply through these functions (its redisReplyObjectFunctions), straight into
// the broker's own reply objects: a root is allocated, every other object is the element of its
// parent's array that hiredis is filling (the parent's elements were made when its header was read,
// so they never move). A function that returns null fails the reader (hiredis reports "Out of
// memory"; the budget says when it was the budget instead). They never throw: hiredis is C.

// Takes `bytes` from the budget of the reply `task` belongs to; false when they do not fit.
bool charge(const redisReadTask* task, std::size_t bytes) noexcept {
    auto& b = *static_cast<reply_budget*>(task->privdata);
    if (bytes > b.limit - b.used) {
        b.exceeded = true;
        return false;
    }
    b.used += bytes;
    return true;
}

// The object for `task`, its own bytes (`bytes` more than the object itself) charged first; null
// when they do not fit or memory runs out.
reply* place(const redisReadTask* task, std::size_t bytes) noexcept {
    const bool root = task->parent == nullptr;
    if (!charge(task, bytes + (root ? sizeof(reply) : 0)))
        return nullptr;
    if (root)
        return new (std::nothrow) reply;
    auto* parent = static_cast<reply*>(task->parent->obj);
    return &parent->elements[static_cast<std::size_t>(task->idx)];
}

// Undoes place() after a later failure: a root is the caller's to delete; an element stays in its
// parent, which the reader frees.
void discard(const redisReadTask* task, reply* r) noexcept {
    if (task->parent == nullptr)
        delete r;
}

void* create_string(const redisReadTask* task, char* s, std::size_t len) {
    reply* r = place(task, len);
    if (r == nullptr)
        return nullptr;
    r->type = task->type == REDIS_REPLY_ERROR    ? reply::kind::error
              : task->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                 : reply::kind::string;
    try {
        r->text.assign(s, len);
    } catch (const std::bad_alloc&) {
        discard(task, r);
        return nullptr;
    }
    return r;
}

void* create_array(const redisReadTask* task, int elements) {
    if (elements < 0) // hiredis reads *-1 as nil and refuses other negative counts; never trust that
        return nullptr;
    const auto n = static_cast<std::size_t>(elements);
    // Every element announced is a reply object: charged before any is made.
    if (n > static_cast<reply_budget*>(task->privdata)->limit / sizeof(reply)) {
        static_cast<reply_budget*>(task->privdata)->exceeded = true;
        return nullptr;
    }
    reply* r = place(task, n * sizeof(reply));
    if (r == nullptr)
        return nullptr;
    r->type = reply::kind::array;
    try {
        r->elements.resize(n);
    } catch (const std::bad_alloc&) {
        discard(task, r);
        return nullptr;
    }
    return r;
}

void* create_integer(const redisReadTask* task, long long value) {
    reply* r = place(task, 0);
    if (r == nullptr)
        return nullptr;
    r->type = reply::kind::integer;
    r->integer = value;
    return r;
}

void* create_nil(const redisReadTask* task) {
    reply* r = place(task, 0);
    if (r != nullptr)
        r->type = reply::kind::nil;
    return r;
}

// hiredis frees only roots (a reply it gives up on); elements go with their root.
void free_object(void* root) {
    delete static_cast<reply*>(root);
}

redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer, create_nil,
                                             free_object};

template <class String>
std::string format(std::span<const String> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> argvlen;
    argv.reserve(args.size());
    argvlen.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        argvlen.push_back(a.size());
    }
    char* target = nullptr;
    const int n = redisFormatCommandArgv(&target, static_cast<int>(args.size()), argv.data(), argvlen.data());
    if (n < 0 || target == nullptr)
        throw std::bad_alloc();
    std::string out(target, static_cast<std::size_t>(n));
    redisFreeCommand(target);
    return out;
}

std::string over_budget(const reply_budget& b) {
    return "a reply larger than redis.max_reply_bytes (" + std::to_string(b.limit) + " bytes)";
}

} // namespace

std::string format_command(std::span<const std::string_view> args) {
    return format(args);
}

std::string format_command(std::span<const std::string> args) {
    return format(args);
}

reader::reader(std::size_t max_reply_bytes)
    : budget_(std::make_unique<reply_budget>(reply_budget{max_reply_bytes})),
      r_(redisReaderCreateWithFunctions(&reply_functions)) {
    if (r_ == nullptr)
        throw std::bad_alloc();
    r_->privdata = budget_.get();
}

reader::~reader() {
    if (r_ != nullptr)
        redisReaderFree(r_);
}

reader::reader(reader&& o) noexcept
    : budget_(std::move(o.budget_)), r_(std::exchange(o.r_, nullptr)), error_(std::move(o.error_)) {}

reader& reader::operator=(reader&& o) noexcept {
    if (this != &o) {
        if (r_ != nullptr)
            redisReaderFree(r_);
        budget_ = std::move(o.budget_);
        r_ = std::exchange(o.r_, nullptr);
        error_ = std::move(o.error_);
    }
    return *this;
}

bool reader::feed(std::string_view bytes) {
    if (failed() || r_ == nullptr)
        return false;
    if (bytes.empty())
        return true;
    if (redisReaderFeed(r_, bytes.data(), bytes.size()) != REDIS_OK) {
        error_ = r_->err != 0 ? std::string(r_->errstr) : std::string("out of memory");
        return false;
    }
    return true;
}

std::string_view reader::unparsed() const noexcept {
    if (failed() || r_ == nullptr || r_->buf == nullptr)
        return {};
    return std::string_view(r_->buf + r_->pos, r_->len - r_->pos);
}

result<std::optional<reply>> reader::take() {
    if (!failed() && r_ != nullptr) {
        void* raw = nullptr;
        if (redisReaderGetReply(r_, &raw) == REDIS_OK) {
            if (raw != nullptr) {
                const std::unique_ptr<reply> root(static_cast<reply*>(raw));
                budget_->used = 0; // the next reply starts afresh
                return std::optional<reply>{std::move(*root)};
            }
            // More bytes are needed: those waiting to be parsed belong to this reply too.
            if (r_->len - r_->pos <= budget_->limit - budget_->used)
                return std::optional<reply>{};
            budget_->exceeded = true;
        }
        if (budget_->exceeded)
            error_ = over_budget(*budget_);
        else
            error_ = r_->err != 0 && r_->errstr[0] != '\0' ? std::string(r_->errstr) : "unknown reader error";
    } else if (!failed()) {
        error_ = "reader moved from";
    }
    return make_error(errc::cache_unavailable, "redis protocol error: " + error_);
}

} // namespace token_broker::redis
