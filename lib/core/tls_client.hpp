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

// Prepares a client connection to `host` (a DNS name, or an IP address literal) before its
// handshake: SNI for a name (RFC 6066; never for an address), and the peer's certificate checked
// against `host` by OpenSSL itself, so that a mismatch fails the handshake with OpenSSL's own
// reason ("hostname mismatch", "IP address mismatch"). False when OpenSSL refuses the name.
bool expect_peer(SSL* ssl, const std::string& host);

// Why a handshake failed, for a log line: `ec`'s message, then OpenSSL's reason when it refused the
// peer's certificate ("certificate verify failed (SSL routines): hostname mismatch").
std::string handshake_failure(SSL* ssl, const boost::system::error_code& ec);

} // namespace token_broker
