// The TLS client context the broker uses towards Zoom and towards Redis (rediss://).
#pragma once

#include "core/net.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace token_broker {

// TLS 1.2 at least, peers verified against the system's default store plus, when `ca_file` is not
// empty, the PEM certificates it holds; verification is never switched off. Throws
// std::runtime_error naming `key` (the configuration key of `ca_file`) when the file cannot be loaded.
std::shared_ptr<ssl::context> make_tls_client_context(const std::string& ca_file, std::string_view key);

} // namespace token_broker
