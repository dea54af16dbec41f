// `token-broker --probe URL`: one plain-HTTP GET for a container healthcheck. It needs no
// configuration and nothing installed besides the broker itself.
#pragma once

#include "app/command_line.hpp"

#include <chrono>
#include <string>

namespace token_broker {

struct probe_result {
    bool healthy = false; // the answer's status was 200
    std::string problem;  // otherwise what went wrong, one line for a person (URL included)
};

// Resolves target.host, connects, sends `GET target.target HTTP/1.1` with `Connection: close`
// and reads the answer, all within `timeout` in total. Blocks the calling thread; uses an
// io_context of its own. Network failures, timeouts and bad answers come back in the result,
// never as exceptions.
probe_result run_probe(const probe_target& target,
                       std::chrono::milliseconds timeout = std::chrono::seconds(2));

// The URL the target was parsed from, normalised: http://HOST:PORT/TARGET (IPv6 in brackets).
std::string probe_url(const probe_target& target);

} // namespace token_broker
