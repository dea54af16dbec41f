// The broker's command line (CONTRACT.md section 1): `token-broker --config FILE [--check-config]`,
// `--version`, `--help`, and `--probe URL` for a container healthcheck.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace token_broker {

// Where `--probe` sends its request: a plain-HTTP URL such as http://127.0.0.1:8080/healthz.
struct probe_target {
    std::string host;        // an IP address (IPv6 without brackets) or a host name
    std::uint16_t port = 80; // the URL's port, 80 when it has none
    std::string target;      // the path and query, percent-encoded as given; "/" at least
};

struct command_line {
    std::optional<std::string> config_file; // --config FILE, never empty when set
    bool check_config = false;              // --check-config
    bool version = false;                   // --version
    bool help = false;                      // --help
    std::optional<probe_target> probe;      // --probe URL
};

// Bad usage: an unknown option, a missing or repeated value, a positional argument, a bad URL.
// what() says what is wrong, for a person, without the usage text.
class command_line_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses the arguments; argv[0] is the program name. Only records what was asked: which options
// are required together is for the caller to decide (main requires --config unless --help,
// --version or --probe is given). Throws command_line_error.
command_line parse_command_line(int argc, const char* const argv[]);

// The usage and the option descriptions, ending with a newline.
std::string usage_text();

} // namespace token_broker
