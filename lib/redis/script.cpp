#include "redis/script.hpp"

#include "core/digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace token_broker::redis {

script::script(std::string lua) : lua_(std::move(lua)) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(lua_.data(), lua_.size(), digest, &size, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("SHA-1 of a Redis script failed");
    sha1_ = lower_hex({reinterpret_cast<const char*>(digest), size});
}

net::awaitable<result<reply>> script::run(client& c, std::vector<std::string> keys,
                                          std::vector<std::string> args) const {
    std::vector<std::string> command;
    command.reserve(3 + keys.size() + args.size());
    command.push_back("EVALSHA");
    command.push_back(sha1_);
    command.push_back(std::to_string(keys.size()));
    command.insert(command.end(), keys.begin(), keys.end());
    command.insert(command.end(), args.begin(), args.end());
    auto r = co_await c.exec(command);
    if (!r || !r->is_error() || !r->text.starts_with("NOSCRIPT"))
        co_return r;
    command[0] = "EVAL";
    command[1] = lua_;
    co_return co_await c.exec(std::move(command));
}

} // namespace token_broker::redis
