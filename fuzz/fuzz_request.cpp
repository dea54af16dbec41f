// Fuzzes the request path from raw bytes to the bytes of the answer: the input is what a client
// sends on one connection (GET and DELETE /token/{userId}, POST /tokens with its body, the probes).
// It is read with request_reader (header limits included) the way the HTTP session reads it, the
// target and Authorization header go through the token route's parsers, the
// request is answered by the router (handle_now, then handle when that has to wait), the token
// endpoint and the token service (cache, single flight, refresh, stale-if-error, negative cache) in
// front of an in-memory fake Zoom, and the answer is serialized. The coroutines run to completion on
// a local io_context.
//
// Each input is replayed twice, each time with a fresh token service, so that an input always does
// the same: in reads of 4096 bytes (the session's) with the default header limit (8192) and two
// caller keys, and in 7-byte reads with a 512-byte limit and no keys (every caller let in), which
// exercises the parser's resumption and the 431 path. The service's clock moves 22 minutes before
// each request, so that the sixth of a run of pipelined requests for a 2-hour ZAK falls in its
// refresh window; a request that sends an X-Request-Id moves it 50 s per character of the id instead
// (50 s to 6400 s), so that inputs can steer time into any window (stale-if-error needs 30 s to
// 5 min of validity left).
//
// The fake Zoom answers by the user id's first word: missing (1001), null ({"token": null}),
// limited (429), down, slow, broken, rejected (400), oauth (not ready), flaky (a token the first time,
// then 502); any other user gets a token. Its tokens all hold the text "zTOKENMARKz".
//
// The bytes go through server/session, the same code that http_server drives over a socket.
//
// Besides the sanitizers, each input is checked against what the headers promise:
// - a target parse_token_target accepts is on the token route (is_token_route), and its user id,
//   type, ttl and meeting_id obey CONTRACT.md section 3 (checked here independently of
//   is_valid_user_id); its error messages are printable ASCII;
// - bearer_token returns a non-empty run of visible ASCII from the header;
// - the router counts a request under the token route exactly when is_token_route says so, and
//   lets no exception escape;
// - every GET or DELETE on the token route leaves exactly one audit line, a POST /tokens one per item
//   (one in all when the whole request is refused), and only POST /tokens is counted under `tokens`;
// - a POST /tokens answered 200 holds one result per item parse_token_batch finds in the body, in
//   order, each a status and its GET's body: a 200 for that item's user and type, an error object
//   (400 for an item the parser refused), never a token in an item that is not a 200;
// - no log line and no answer other than a 200's holds a token (the mark above), unless the input
//   itself, as sent or percent-decoded once, holds the mark;
// - a 200 is {"token", "type", "user_id", "expires_at", "expires_in", "cached"} for the user and
//   type asked for, with a token the fake issued;
// - the serialized answer is one well-formed HTTP/1.1 response whose status, body and
//   Content-Length match (a 204 has neither body nor Content-Length), with a sane X-Request-Id (the caller's
//   when it sent a sane one) and no header beyond the expected ones; a JSON answer parses, and an error
//   answer has the contract's
//   {"error": {"code", "message"}} shape;
// - a first request read both ways is the same request.
#include "auth/auth.hpp"
#include "cache/token_service.hpp"
#include "core/target_path.hpp"
#include "metrics/metrics.hpp"
#include "server/message.hpp"
#include "server/router.hpp"
#include "server/session.hpp"
#include "server/token_batch.hpp"
#include "server/token_endpoint.hpp"
#include "server/token_request.hpp"
#include "zoom/zoom_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
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
    const bool head = req.method == http::verb::head;
    parser.skip(head); // an answer to HEAD has no body, whatever its Content-Length says
    beast::error_code ec;
    const std::size_t used = parser.put(net::buffer(wire), ec);
    require(!ec && parser.is_done() && used == wire.size(), "the answer is exactly one HTTP response");

    const auto& answer = parser.get();
    require(answer.result_int() == res.status, "the status is the handler's");
    require(answer[http::field::cache_control] == "no-store", "Cache-Control: no-store");
    // A 204 has neither a body nor Content-Type and Content-Length (RFC 9110 section 8.6).
    const bool no_content = res.status == 204;
    if (no_content) {
        require(res.body.empty() && answer.body().empty(), "a 204 has no body");
        require(answer.count(http::field::content_length) == 0 &&
                    answer.count(http::field::content_type) == 0,
                "a 204 has no Content-Length or Content-Type");
    } else {
        require(answer.body() == (head ? std::string() : res.body),
                "the body is the handler's, none for HEAD");
        require(answer[http::field::content_length] == std::to_string(res.body.size()),
                "Content-Length is right");
    }

    const std::string_view id = answer["X-Request-Id"];
    require(is_sane_request_id(id) && id == req.request_id, "X-Request-Id is sane and the request's");
    if (is_sane_request_id(sent_id))
        require(id == sent_id, "a sane X-Request-Id is echoed");

    std::size_t expected_fields =
        (no_content ? 3 : 5) + !res.allow.empty() + res.www_authenticate + res.retry_after.has_value();
    expected_fields += res.close || !req.keep_alive || req.version == 10;
    require(static_cast<std::size_t>(std::distance(answer.begin(), answer.end())) == expected_fields,
            "no header beyond the expected ones");

    if (no_content || res.content_type != "application/json")
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

constexpr std::string_view token_mark = "zTOKENMARKz";

// Zoom as the token service sees it, in memory. Deterministic: what it answers depends only on the
// query and on how often it was asked before, within one token service's life.
class fake_zoom final : public token_source {
public:
    explicit fake_zoom(const time_point& now) : now_(now) {}

    net::awaitable<result<secret>> fetch_token(token_query q) override {
        require(contract_user_id(q.user_id), "Zoom is only asked for valid user ids");
        require(!q.meeting_id || q.type == token_type::onbehalf, "meeting_id only for onbehalf");
        const std::string_view id = q.user_id;
        const auto first = [&](std::string_view word) { return id.starts_with(word); };
        const int asked = ++asked_[q.user_id];
        broker_error e;
        if (first("missing")) {
            e = make_error(errc::user_not_found, "User does not exist: " + q.user_id);
            e.zoom_code = 1001;
        } else if (first("null")) {
            e = make_error(errc::token_unavailable, "Zoom has no token for this user");
        } else if (first("limited")) {
            e = make_error(errc::rate_limited, "Zoom's rate limit was reached");
            e.retry_after = std::chrono::seconds(17);
        } else if (first("down")) {
            e = make_error(errc::upstream_unavailable, "Zoom cannot be reached");
        } else if (first("slow")) {
            e = make_error(errc::upstream_timeout, "Zoom did not answer in time");
        } else if (first("broken") || (first("flaky") && asked > 1)) {
            e = make_error(errc::upstream_error, "Zoom answered 502");
        } else if (first("rejected")) {
            e = make_error(errc::upstream_rejected, "Invalid parameter");
            e.zoom_code = 300;
        } else if (first("oauth")) {
            e = make_error(errc::not_ready, "OAuth failing: invalid client");
        } else {
            co_return secret(make_token(q, asked));
        }
        co_return e;
    }

    readiness ready() const override { return {true, {}}; }

private:
    // A ZAK-shaped JWT for zak and onbehalf (its exp: now plus the ttl, or 2 hours), an opaque
    // string for `token`; both hold token_mark.
    std::string make_token(const token_query& q, int serial) const {
        if (q.type == token_type::token)
            return fmt::format("ztk.{}.{:04}", token_mark, serial);
        const auto exp = std::chrono::floor<std::chrono::seconds>(now_.time_since_epoch()).count() +
                         (q.ttl ? *q.ttl : 7200);
        // {"alg":"HS256","typ":"JWT"} . {"exp":<exp>} in base64url, then a signature holding the mark.
        static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const std::string claims = fmt::format(R"({{"exp":{}}})", exp);
        std::string payload;
        std::uint32_t bits = 0;
        int held = 0;
        for (unsigned char c : claims) {
            bits = (bits << 8) | c;
            held += 8;
            while (held >= 6) {
                held -= 6;
                payload.push_back(alphabet[(bits >> held) & 63]);
            }
        }
        if (held > 0)
            payload.push_back(alphabet[(bits << (6 - held)) & 63]);
        return fmt::format("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}{:05}", payload, token_mark, serial);
    }

    const time_point& now_;
    std::map<std::string, int, std::less<>> asked_;
};

// The log, kept in memory: every line as "<level> <message>".
struct captured_log {
    std::ostringstream text;
    std::shared_ptr<spdlog::logger> logger = [this] {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(text);
        sink->set_pattern("%l %v");
        auto l = std::make_shared<spdlog::logger>("fuzz", sink);
        l->set_level(spdlog::level::trace);
        return l;
    }();

    std::string take() {
        std::string s = text.str();
        text.str({});
        return s;
    }
};

// One token service with its fake Zoom, endpoint and router: made fresh for each pass over an input.
struct token_world {
    token_world(net::io_context& ioc, metrics& counters, captured_log& log, bool with_keys)
        : zoom(now),
          service(ioc.get_executor(), zoom, cache_config{}, counters, log.logger, [this] { return now; }),
          endpoint(service, with_keys ? caller_keys() : std::make_shared<const authenticator>(),
                   log_format::text, log.logger),
          routes(
              counters, [] { return std::optional<std::string>(); }, &endpoint) {}

    // Two keys: "tbk-all-0123" for every user, "tbk-team-4567" for team-* and *@example.com.
    static std::shared_ptr<const authenticator> caller_keys() {
        return std::make_shared<const authenticator>(std::vector<caller_key>{
            {"fuzz-all", sha256("tbk-all-0123"), {"*"}},
            {"fuzz-team", sha256("tbk-team-4567"), {"team-*", "*@example.com"}},
        });
    }

    time_point now{std::chrono::seconds(1'795'993'200)}; // 2026-11-29T23:00:00Z
    fake_zoom zoom;
    token_service service;
    token_endpoint endpoint;
    router routes;
};

// What the process keeps between inputs.
struct process_state {
    metrics counters;
    captured_log log;
    net::io_context ioc;
};

// The input as sent, and percent-decoded once: what a caller can put into a log line or a message.
std::string caller_text(std::string_view input) {
    std::string decoded;
    decoded.reserve(input.size());
    const auto hex = [](char c) {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
    };
    for (std::size_t i = 0; i < input.size(); ++i) {
        if (input[i] == '%' && i + 2 < input.size() && hex(input[i + 1]) >= 0 && hex(input[i + 2]) >= 0) {
            decoded.push_back(static_cast<char>(hex(input[i + 1]) * 16 + hex(input[i + 2])));
            i += 2;
        } else {
            decoded.push_back(input[i]);
        }
    }
    return std::string(input) + "\n" + decoded;
}

std::size_t audit_lines(std::string_view log) {
    std::size_t n = 0;
    for (std::size_t at = 0; at < log.size();) {
        const std::size_t end = std::min(log.find('\n', at), log.size());
        n += log.substr(at, end - at).starts_with("info audit ");
        at = end + 1;
    }
    return n;
}

// A 200's body (or a batch's result, whose status member is skipped) for `query`.
void check_token_body(const token_query& query, const boost::json::object& answer) {
    for (const char* member : {"token", "type", "user_id", "expires_at", "expires_in", "cached"})
        require(answer.contains(member), "a 200 has every member of the contract");
    require(answer.at("user_id").as_string() == query.user_id, "for the user asked for");
    require(answer.at("type").as_string() == to_string(query.type), "of the type asked for");
    require(std::string_view(answer.at("token").as_string()).find(token_mark) != std::string_view::npos,
            "a token the fake issued");
    require(answer.at("expires_in").to_number<std::int64_t>() >= 0 && answer.at("cached").is_bool(),
            "expires_in and cached");
}

void check_token_answer(const request& req, const response& res) {
    const auto query = parse_token_target(req.target, false);
    require(query.has_value(), "a token was answered for a valid target");
    const boost::json::value body = boost::json::parse(res.body);
    check_token_body(*query, body.as_object());
}

// A POST /tokens answered 200: one result per item, each its GET's answer. Returns how many.
std::size_t check_batch_answer(const request& req, const response& res) {
    const auto items = parse_token_batch(req.body);
    require(items.has_value(), "a batch was answered 200 for a body the parser took");
    const boost::json::value body = boost::json::parse(res.body);
    const boost::json::object& answer = body.as_object();
    require(answer.size() == 1 && answer.contains("results") && answer.at("results").is_array(),
            "a batch's answer is {\"results\": [...]}");
    const boost::json::array& results = answer.at("results").as_array();
    require(results.size() == items->size(), "one result per item");
    for (std::size_t i = 0; i < results.size(); ++i) {
        require(results[i].is_object(), "a result is an object");
        const boost::json::object& r = results[i].as_object();
        require(r.contains("status") && r.at("status").is_int64(), "a result has a status");
        const auto status = r.at("status").as_int64();
        const auto& item = (*items)[i];
        if (!item)
            require(status == 400, "an item the parser refused is 400");
        if (status == 200) {
            require(item.has_value(), "a 200 for a valid item");
            check_token_body(*item, r);
            continue;
        }
        require(status >= 400 && status <= 599, "a result that is not a 200 is an error");
        require(r.size() == 2 && r.contains("error") && r.at("error").is_object() &&
                    r.at("error").as_object().contains("code") &&
                    r.at("error").as_object().contains("message"),
                "an error result is its status and the GET's error object");
        require(boost::json::serialize(r).find(token_mark) == std::string::npos,
                "no token in an error result");
    }
    return results.size();
}

// Answers the request the session has read, as http_server does: at once when no waiting is needed,
// else the coroutine; then checks what the answer and the log say.
void answer(process_state& process, session& s, std::string_view caller_said) {
    if (!s.answer()) {
        bool finished = false;
        std::exception_ptr escaped;
        net::co_spawn(process.ioc, s.complete(), [&](std::exception_ptr e) {
            finished = true;
            escaped = e;
        });
        process.ioc.restart();
        process.ioc.run();
        require(finished, "the router finishes without I/O");
        if (escaped)
            std::rethrow_exception(escaped); // a bug: the session answers every failure
    }
    process.ioc.restart();
    process.ioc.run(); // background refreshes started by a hit
    const request& req = s.current_request();
    const response& res = s.current_response();
    // A request refused while it was read (431, 413, 400) never reaches the router or the endpoint.
    require((res.counted_as == route::token) == (!s.refused() && is_token_route(req.target)),
            "counted under the token route exactly when is_token_route says so");

    const bool batch_route = !s.refused() && target_path(req.target) == "/tokens";
    require((res.counted_as == route::tokens) == batch_route, "counted under tokens exactly for /tokens");

    const std::string log = process.log.take();
    const bool endpoint_asked = !s.refused() && is_token_route(req.target) &&
                                (req.method == http::verb::get || req.method == http::verb::delete_);
    const bool batch_asked = batch_route && req.method == http::verb::post;
    std::size_t items = 0;
    if (batch_asked && res.status == 200)
        items = check_batch_answer(req, res);
    const std::size_t expected_audits = endpoint_asked      ? 1u
                                        : !batch_asked      ? 0u
                                        : res.status == 200 ? items
                                                            : 1u;
    require(audit_lines(log) == expected_audits, "one audit line for each token answer, each batch item");
    if (caller_said.find(token_mark) == std::string_view::npos) {
        require(log.find(token_mark) == std::string::npos, "no token in the log");
        if (res.status != 200)
            require(res.body.find(token_mark) == std::string::npos, "no token in an error answer");
    }
    if (res.status == 200 && res.counted_as == route::token)
        check_token_answer(req, res);
}

// FUZZ_REQUEST_TRACE=1 in the environment prints each request and its answer, to see what an input
// does: FUZZ_REQUEST_TRACE=1 build/fuzz/fuzz/fuzz_request fuzz/corpus/fuzz_request/flaky_stale
bool trace() {
    static const bool on = [] {
        const char* v = std::getenv("FUZZ_REQUEST_TRACE");
        return v && *v == '1';
    }();
    return on;
}

struct first_request {
    bool parsed = false;
    request req;
    std::string sent_id; // the X-Request-Id as sent, before a new one replaced an unusable one
};

// Plays `input` to a session as one connection, in reads of at most `piece` bytes.
void run_session(process_state& process, std::string_view input, std::size_t header_limit, std::size_t piece,
                 bool with_keys, first_request& first) {
    token_world world(process.ioc, process.counters, process.log, with_keys);
    const std::string caller_said = caller_text(input);
    process.log.take();
    server_config cfg;
    cfg.max_header_bytes = header_limit;
    session s(cfg, world.routes, process.counters, *process.log.logger);
    std::size_t received = 0;
    for (int message = 0; message < 32; ++message) {
        auto step = s.parse();
        while (step == session::step::read) {
            if (received == input.size()) {
                step = s.end_of_input();
                break;
            }
            const auto space = s.read_space();
            const std::size_t n = std::min({piece, space.size(), input.size() - received});
            std::memcpy(space.data(), input.data() + received, n);
            received += n;
            s.received(n);
            step = s.parse();
        }
        if (step == session::step::close)
            break;
        const request& req = s.current_request();
        const std::string sent_id(s.sent_request_id());
        world.now +=
            sent_id.empty() ? std::chrono::seconds(22 * 60) : std::chrono::seconds(50 * sent_id.size());
        if (!s.refused()) {
            if (message == 0) {
                first.parsed = true;
                first.req = req;
                first.sent_id = sent_id;
            }
            check_target(req.target);
            check_authorization(req.authorization);
        }
        answer(process, s, caller_said);
        const response& res = s.current_response();
        if (trace())
            std::fprintf(stderr, "%s %s -> %u %s\n", req.method_name.c_str(), req.target.c_str(), res.status,
                         res.body.c_str());
        const std::string wire(s.output(false));
        check_serialized(req, res, wire, sent_id);
        if (!s.sent())
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
    static process_state process;
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    first_request whole, pieces;
    run_session(process, input, 8192, 4096, true, whole);
    run_session(process, input, 512, 7, false, pieces);
    if (whole.parsed && pieces.parsed)
        require(same_request(whole, pieces), "the first request reads the same in pieces");
    return 0;
}
