#include "redis/protocol.hpp"

#include <hiredis/hiredis.h>
#include <new>
#include <utility>
#include <vector>

namespace token_broker::redis {
namespace {

reply copy_reply(const redisReply& r) {
    reply out;
    switch (r.type) {
    case REDIS_REPLY_STATUS:
        out.type = reply::kind::status;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ERROR:
        out.type = reply::kind::error;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STRING:
        out.type = reply::kind::string;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.type = reply::kind::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = reply::kind::array;
        out.elements.reserve(r.elements);
        for (std::size_t i = 0; i < r.elements; ++i)
            out.elements.push_back(copy_reply(*r.element[i]));
        break;
    default:
        out.type = reply::kind::nil;
        break;
    }
    return out;
}

struct reply_deleter {
    void operator()(void* p) const noexcept { freeReplyObject(p); }
};

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

} // namespace

std::string format_command(std::span<const std::string_view> args) {
    return format(args);
}

std::string format_command(std::span<const std::string> args) {
    return format(args);
}

reader::reader() : r_(redisReaderCreate()) {
    if (r_ == nullptr)
        throw std::bad_alloc();
}

reader::~reader() {
    if (r_ != nullptr)
        redisReaderFree(r_);
}

reader::reader(reader&& o) noexcept : r_(std::exchange(o.r_, nullptr)), error_(std::move(o.error_)) {}

reader& reader::operator=(reader&& o) noexcept {
    if (this != &o) {
        if (r_ != nullptr)
            redisReaderFree(r_);
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

result<std::optional<reply>> reader::take() {
    if (!failed() && r_ != nullptr) {
        void* raw = nullptr;
        if (redisReaderGetReply(r_, &raw) == REDIS_OK) {
            if (raw == nullptr)
                return std::optional<reply>{};
            std::unique_ptr<void, reply_deleter> owned(raw);
            return std::optional<reply>{copy_reply(*static_cast<redisReply*>(raw))};
        }
        error_ = r_->err != 0 && r_->errstr[0] != '\0' ? std::string(r_->errstr) : "unknown reader error";
    } else if (!failed()) {
        error_ = "reader moved from";
    }
    return make_error(errc::cache_unavailable, "redis protocol error: " + error_);
}

} // namespace token_broker::redis
