// The TLS files the configuration names (server.tls.*, zoom.ca_file), loaded as the broker uses
// them. load_config calls these, so a file that cannot be used is a configuration error when the
// configuration is loaded (and so in --check-config), not a surprise at start.
#pragma once

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <string>
#include <string_view>

namespace token_broker {

// The listener's TLS context, made from server.tls (which must be enabled()): the certificate
// chain of cert_file, the private key of key_file (which must belong to the chain's first
// certificate), and with client_ca_file, the CAs client certificates must be signed by, named in
// the CertificateRequest. TLS 1.2 (ECDHE with AEAD suites only) and TLS 1.3.
// Throws config_error naming the server.tls.* key of the file that cannot be used. A key file that
// is encrypted is refused, never asked a passphrase for.
// `key_prefix` names the section in errors: "server.tls" or "webhook.tls".
boost::asio::ssl::context make_listener_tls_context(const listener_tls_config& tls,
                                                    std::string_view key_prefix = "server.tls");

// Checks that the file at `path` loads as a trust store (PEM certificates), as the Zoom client
// loads zoom.ca_file. Throws config_error(key, ...) when it does not.
void check_ca_file(const std::string& path, std::string_view key);

} // namespace token_broker
