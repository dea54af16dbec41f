// Fuzzes the request path from raw bytes to the bytes of the answer: the input is what a client
// sends on one connection. It is read with request_reader (header limits included) the way the HTTP
// session reads it, the target and Authorization header go through the token route's parsers, the
// request is answered by the router, and the answer is serialized.
//
// Each input is replayed twice: all bytes at once with the default header limit (8192), and in
// 7-byte reads with a 512-byte limit, which exercises the parser's resumption and the 431 path.
//
// The session loop below mirrors serve_requests in server/http_server.cpp (which is internal and
// bound to a socket): the reads, the error-to-answer mapping and when the connection ends. Keep the
// two in step.
//
// Besides the sanitizers, each input is checked against what the headers promise:
// - a target parse_token_target accepts is on the token route (is_token_route), and its user id,
//   type, ttl and meeting_id obey CONTRACT.md section 3 (checked here independently of
//   is_valid_user_id); its error messages are printable ASCII;
// - bearer_token returns a non-empty run of visible ASCII from the header;
// - the router counts a request under the token route exactly when is_token_route says so, and
//   lets no exception escape;
// - the serialized answer is one well-formed HTTP/1.1 response whose status, body and
//   Content-Length match, with a sane X-Request-Id (the caller's when it sent a sane one) and no
//   header beyond the expected ones; a JSON answer parses, and an error answer has the contract's
//   {"error": {"code", "message"}} shape;
// - a first request parsed both ways is the same request.
#include "auth/auth.hpp"
#include "metrics/metrics.hpp"
#include "server/message.hpp"
#include "server/request_reader.hpp"
#include "server/router.hpp"
#include "server/token_request.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace token_broker;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_request: broken promise: %s\n", what);
        std::abort();
    }
}

bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool visible(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

bool digits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// CONTRACT.md section 3, restated: 1 to 254 bytes of visible ASCII other than / \ ? # %, not . or ..
bool contract_user_id(std::string_view id) {
    return !id.empty() && id.size() <= 254 && visible(id) &&
           id.find_first_of("/\\?#%") == std::string_view::npos && id != "." && id != "..";
}

void check_target(std::string_view target) {
    const bool on_route = is_token_route(target);
    for (const bool is_delete : {false, true}) {
        const result<token_query> parsed = parse_token_target(target, is_delete);
        if (!parsed) {
            require(parsed.error().code == errc::invalid_request, "a bad target is invalid_request");
            require(printable(parsed.error().message), "a target error message is printable");
            continue;
        }
        const token_query& q = *parsed;
        require(on_route, "an accepted target is on the token route");
        require(contract_user_id(q.user_id), "an accepted user id obeys the contract");
        require(is_valid_user_id(q.user_id), "an accepted user id is valid");
        if (q.ttl)
            require(*q.ttl >= 60 && *q.ttl <= 31536000 && q.type != token_type::token,
                    "ttl in range, not for token");
        if (q.meeting_id)
            require(q.type == token_type::onbehalf && q.meeting_id->size() >= 9 &&
                        q.meeting_id->size() <= 12 && digits(*q.meeting_id),
                    "meeting_id: 9 to 12 digits, onbehalf only");
        if (is_delete)
            require(!q.ttl && !q.meeting_id && q.type == token_type::zak, "DELETE takes no query");
    }
}

void check_authorization(std::string_view header) {
    const std::optional<std::string_view> token = bearer_token(header);
    if (!token)
        return;
    require(!token->empty() && visible(*token), "a bearer token is visible ASCII");
    require(token->data() >= header.data() && token->data() + token->size() <= header.data() + header.size(),
            "a bearer token views the header");
}

// Parses `wire` as the one HTTP response serialize_response made for `req` and `res`.
void check_serialized(const request& req, const response& res, const std::string& wire,
                      std::string_view sent_id) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(1024 * 1024);
    beast::error_code ec;
    const std::size_t used = parser.put(net::buffer(wire), ec);
    require(!ec && parser.is_done() && used == wire.size(), "the answer is exactly one HTTP response");

    const auto& answer = parser.get();
    require(answer.result_int() == res.status, "the status is the handler's");
    require(answer.body() == res.body, "the body is the handler's");
    require(answer[http::field::content_length] == std::to_string(res.body.size()),
            "Content-Length is right");
    require(answer[http::field::cache_control] == "no-store", "Cache-Control: no-store");

    const std::string_view id = answer["X-Request-Id"];
    require(is_sane_request_id(id) && id == req.request_id, "X-Request-Id is sane and the request's");
    if (is_sane_request_id(sent_id))
        require(id == sent_id, "a sane X-Request-Id is echoed");

    std::size_t expected_fields = 5 + !res.allow.empty() + res.www_authenticate + res.retry_after.has_value();
    expected_fields += res.close || !req.keep_alive || req.version == 10;
    require(static_cast<std::size_t>(std::distance(answer.begin(), answer.end())) == expected_fields,
            "no header beyond the expected ones");

    if (res.content_type != "application/json")
        return;
    boost::system::error_code json_ec;
    const boost::json::value body = boost::json::parse(res.body, json_ec);
    require(!json_ec && body.is_object(), "a JSON answer is an object");
    if (res.status < 400)
        return;
    const boost::json::value* error = body.get_object().if_contains("error");
    require(error && error->is_object(), "an error answer has an error object");
    const boost::json::value* code = error->get_object().if_contains("code");
    const boost::json::value* message = error->get_object().if_contains("message");
    require(code && code->is_string() && message && message->is_string(),
            "an error has a code and a message");
}

// What the process keeps between inputs, as the service keeps it between requests.
struct service_model {
    metrics counters;
    router routes{counters, [] { return std::optional<std::string>(); }, nullptr};
    net::io_context ioc;

    void answer(const request& req, response& res) {
        bool finished = false;
        std::exception_ptr escaped;
        net::co_spawn(ioc, routes.handle(req, res), [&](std::exception_ptr e) {
            finished = true;
            escaped = e;
        });
        ioc.restart();
        ioc.run();
        require(finished, "the router finishes without I/O");
        if (escaped)
            std::rethrow_exception(escaped); // a bug: the handler must answer expected failures
        require((res.counted_as == route::token) == is_token_route(req.target),
                "counted under the token route exactly when is_token_route says so");
    }
};

// Reads one message the way http::async_read does over a stream that delivers `piece` bytes a read
// into a buffer of `capacity` bytes. `consumed` and `received` are offsets into `input`.
beast::error_code read_message(request_reader& reader, std::string_view input, std::size_t& consumed,
                               std::size_t& received, std::size_t piece, std::size_t capacity) {
    for (;;) {
        beast::error_code ec;
        if (received > consumed) {
            const std::size_t n = reader.put(net::buffer(input.data() + consumed, received - consumed), ec);
            consumed += n;
            if (ec && ec != http::error::need_more)
                return ec;
            if (!ec && reader.is_done())
                return ec;
            if (!ec && n > 0)
                continue;
        }
        if (received - consumed >= capacity)
            return http::error::buffer_overflow;
        if (received == input.size()) { // the client has sent everything and closes
            if (!reader.got_some())
                return http::error::end_of_stream;
            reader.put_eof(ec);
            return ec;
        }
        received = std::min(input.size(), received + std::min(piece, capacity - (received - consumed)));
    }
}

struct first_request {
    bool parsed = false;
    request req;
    std::string sent_id; // the X-Request-Id as sent, before a new one replaced an insane one
};

void run_session(service_model& service, std::string_view input, std::size_t header_limit, std::size_t piece,
                 first_request& first) {
    // The session's buffer: server/http_server.cpp sizes it so.
    const std::size_t capacity = header_limit + max_request_body + 4096;
    request req;
    response res;
    std::string wire;
    std::size_t consumed = 0;
    std::size_t received = 0;
    for (int message = 0; message < 32 && consumed < input.size(); ++message) {
        request_reader reader(req, static_cast<std::uint32_t>(header_limit));
        const beast::error_code ec = read_message(reader, input, consumed, received, piece, capacity);
        const std::string sent_id = req.request_id;
        if (!is_sane_request_id(req.request_id))
            make_request_id(req.request_id);
        res.clear();
        if (ec == http::error::header_limit) {
            set_error(res, errc::headers_too_large, "request headers are too large");
        } else if (ec == http::error::body_limit) {
            set_error(res, errc::payload_too_large, "request bodies are not accepted");
        } else if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
                   ec == http::error::buffer_overflow) {
            break;
        } else if (ec) {
            set_error(res, errc::invalid_request, "malformed HTTP request");
            res.close = true;
        } else if (reader.duplicate_header()) {
            set_error(res, errc::invalid_request, "Authorization and X-Request-Id may appear only once");
            res.close = true;
        } else {
            if (message == 0) {
                first.parsed = true;
                first.req = req;
                first.sent_id = sent_id;
            }
            check_target(req.target);
            check_authorization(req.authorization);
            service.answer(req, res);
        }
        wire.clear();
        serialize_response(req, res, wire);
        check_serialized(req, res, wire, sent_id);
        if (res.close || !req.keep_alive)
            break;
    }
}

bool same_request(const first_request& a, const first_request& b) {
    return a.req.method == b.req.method && a.req.method_name == b.req.method_name &&
           a.req.target == b.req.target && a.req.authorization == b.req.authorization &&
           a.req.keep_alive == b.req.keep_alive && a.req.version == b.req.version && a.sent_id == b.sent_id;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static service_model service;
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    first_request whole, pieces;
    run_session(service, input, 8192, input.size() + 1, whole);
    run_session(service, input, 512, 7, pieces);
    if (whole.parsed && pieces.parsed)
        require(same_request(whole, pieces), "the first request reads the same in pieces");
    return 0;
}
