// One connection's request-and-answer steps, without a socket: the bytes received go in, parsed
// requests are handed to the request_handler, and the bytes to send come out. http_server drives it
// over a TCP or TLS stream; the request fuzzer drives the same code over bytes in memory.
//
// The cycle, for each request:
//   parse() (after received(), while it says read) -> answer, or close
//   answer() -> true, or false and then co_await complete()
//   output() -> the bytes to write; then sent() -> whether to go on with the next request.
#pragma once

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "server/request_handler.hpp"
#include "server/request_reader.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <spdlog/logger.h>

#include <algorithm>
#include <optional>
#include <string>

namespace token_broker {

class session {
public:
    // References must outlive the session.
    session(const server_config& cfg, request_handler& handler, metrics& m, spdlog::logger& log);

    // Where to put received bytes (at most one read's worth), then received(n) with how many came.
    // Defined here, as they run for every read.
    net::mutable_buffer read_space() {
        return buffer_.prepare(std::min(read_chunk, buffer_.max_size() - buffer_.size()));
    }
    void received(std::size_t n) { buffer_.commit(n); }

    // True when nothing of a next request has arrived yet: the connection is idle.
    bool idle() const noexcept { return !reader_ && buffer_.size() == 0; }

    enum class step {
        read,   // more bytes are needed for the request under way
        answer, // a request (or a refusal of one) is ready: call answer()
        close,  // close the connection without an answer (the peer went away, or overflowed)
    };

    // Parses what is buffered: only while the parser needs more does it ask for a read, so a whole
    // request that arrived in one read costs no further I/O.
    step parse();

    // The peer closed its sending side (end of stream, or a TLS stream truncated): the request under
    // way, if any, ends here.
    step end_of_input();

    // Admits and routes the request once (a refusal found while parsing is already answered).
    // True: the answer is ready. False: co_await complete() first.
    bool answer();
    net::awaitable<void> complete();

    // The bytes of the answer; `closing` (the server drains) makes it the connection's last.
    // Valid until the next call of parse().
    std::string_view output(bool closing);

    // The answer went out (or could not): counts it. True when the connection goes on.
    bool sent();

    // The request read last and its answer (for the request fuzzer's checks).
    const request& current_request() const noexcept { return req_; }
    const response& current_response() const noexcept { return res_; }
    // True when the request was refused while it was read (the handler is not asked).
    bool refused() const noexcept { return refused_; }
    // The X-Request-Id as the caller sent it (empty when absent or repeated), before an unusable
    // one was replaced.
    std::string_view sent_request_id() const noexcept { return id_replaced_ ? sent_id_ : req_.request_id; }

private:
    static constexpr std::size_t read_chunk = 4096; // bytes asked for by one read
    step need_more();
    step finish(beast::error_code ec);
    void fail(const std::exception& e);

    const server_config& cfg_;
    request_handler& handler_;
    metrics& metrics_;
    spdlog::logger& log_;
    beast::flat_buffer buffer_;
    std::optional<request_reader> reader_;
    bool refused_ = false;
    bool id_replaced_ = false;
    std::string sent_id_; // the unusable X-Request-Id that was replaced
    request req_;
    response res_;
    std::string out_;
    connection_context ctx_;
};

} // namespace token_broker
