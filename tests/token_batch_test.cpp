// POST /tokens (CONTRACT.md section 3): the body's parser on its own, then the route through HTTP
// against the Zoom simulator over real TLS, each item held against what its own GET answers.
#include "broker_harness.hpp"
#include "server/router.hpp"
#include "server/token_batch.hpp"
#include "server/token_endpoint.hpp"
#include "server/token_request.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::bearer;
using testing::client;
using testing::error_code_of;
using testing::json_body;
using testing::key_for;
using testing::running_broker;
using response_t = http::response<http::string_body>;

// ---- the body, parsed on its own ------------------------------------------------------------------

std::string message_of(const result<std::vector<batch_item>>& r) {
    return r ? std::string("(parsed)") : r.error().message;
}

// The whole request is refused with invalid_request, its message holding `says`.
void expect_refused(std::string_view body, std::string_view says) {
    const auto r = parse_token_batch(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, errc::invalid_request) << body;
    EXPECT_NE(r.error().message.find(says), std::string::npos) << body << " -> " << r.error().message;
}

std::string items_of(std::size_t n) {
    std::string body = R"({"requests":[)";
    for (std::size_t i = 0; i < n; ++i)
        body += (i ? "," : "") + std::string(R"({"user_id":"u)") + std::to_string(i) + R"("})";
    return body + "]}";
}

TEST(TokenBatchParse, ABodyThatIsNotJsonIsRefusedAsAWhole) {
    for (const char* body : {"", " ", "{", "requests", R"({"requests":[{"user_id":"a"}])", "{'requests':[]}",
                             R"({"requests":[{"user_id":"a"}]} trailing)", "\xff\xfe{}"})
        expect_refused(body, "not JSON");
}

TEST(TokenBatchParse, ABodyThatIsNotAnObjectIsRefused) {
    for (const char* body : {"[]", R"([{"user_id":"a"}])", "42", R"("requests")", "null", "true"})
        expect_refused(body, "must be a JSON object");
}

TEST(TokenBatchParse, UnknownMembersAreRefusedInTheBodyAndInAnItem) {
    expect_refused(R"({"requests":[{"user_id":"a"}],"extra":1})", "unknown member");
    expect_refused(R"({"Requests":[{"user_id":"a"}]})", "unknown member");
    expect_refused(R"({"requests":[{"user_id":"a"},{"user_id":"b","userId":"c"}]})",
                   "requests item 2 has an unknown member");
    expect_refused(R"({"requests":[{"user_id":"a","TTL":60}]})",
                   "requests item 1 has an unknown member \"TTL\"");
    expect_refused(R"({"extra":1,"requests":[{"user_id":"a"}]})", "unknown member \"extra\"");
    // A name is shown safely: printable, and cut at 64 bytes.
    const auto r =
        parse_token_batch(R"({"requests":[{"user_id":"a","a\nb\u00e9)" + std::string(100, 'x') + R"(":1}]})");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("\"a?b??xxx"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("xxx\"..."), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
}

// Section 3: no member twice in one object. JSON parsers keep one of the two silently (Boost.JSON the
// last), so a caller's mistake would go unnoticed.
TEST(TokenBatchParse, AMemberTwiceInOneObjectIsRefused) {
    expect_refused(R"({"requests":[{"user_id":"a"}],"requests":[{"user_id":"b"}]})",
                   "the body has the member \"requests\" more than once");
    expect_refused(R"({"requests":[{"user_id":"a","user_id":"b"}]})",
                   "requests item 1 has the member \"user_id\" more than once");
    expect_refused(R"({"requests":[{"user_id":"a"},{"user_id":"b","ttl":600,"type":"zak","ttl":600}]})",
                   "requests item 2 has the member \"ttl\" more than once");
    expect_refused(R"({"requests":[{"user_id":"a","type":"onbehalf","meeting_id":"123456789",)"
                   R"("meeting_id":"987654321"}]})",
                   "requests item 1 has the member \"meeting_id\" more than once");
    // Equal names however they are escaped.
    expect_refused(R"({"requests":[{"user_id":"a","user\u005fid":"b"}]})",
                   "requests item 1 has the member \"user_id\" more than once");
    // The same names in different objects are no repetition.
    const auto r = parse_token_batch(R"({"requests":[{"user_id":"a","ttl":600},{"user_id":"b","ttl":600}]})");
    ASSERT_TRUE(r) << message_of(r);
    EXPECT_EQ(r->size(), 2u);
}

TEST(TokenBatchParse, RequestsMustBeAnArrayOfObjects) {
    for (const char* body : {"{}", R"({"requests":{}})", R"({"requests":"a"})", R"({"requests":null})"})
        expect_refused(body, "\"requests\" must be an array");
    expect_refused(R"({"requests":[{"user_id":"a"},5]})", "requests item 2 is not an object");
    expect_refused(R"({"requests":[{"user_id":"a"},{"user_id":"b"},["c"]]})",
                   "requests item 3 is not an object");
}

TEST(TokenBatchParse, WrongTypesAreRefusedNamingTheItemAndTheMember) {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"requests":[{"user_id":7}]})", "requests item 1: user_id must be a string"},
        {R"({"requests":[{"user_id":null}]})", "requests item 1: user_id must be a string"},
        {R"({"requests":[{"user_id":"a"},{"user_id":"b","type":1}]})",
         "requests item 2: type must be a string"},
        {R"({"requests":[{"user_id":"a","ttl":"3600"}]})", "requests item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":"a","ttl":3600.5}]})", "requests item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":"a","ttl":3.6e3}]})", "requests item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":"a","ttl":true}]})", "requests item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":"a","ttl":null}]})", "requests item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":"a","type":"onbehalf","meeting_id":123456789}]})",
         "requests item 1: meeting_id must be a string"},
        {R"({"requests":[{"type":"zak"}]})", "requests item 1 has no user_id"},
    };
    for (const auto& [body, says] : cases)
        expect_refused(body, says);
}

TEST(TokenBatchParse, OneToAHundredItems) {
    expect_refused(items_of(0), "must hold 1 to 100 items, not 0");
    expect_refused(items_of(101), "must hold 1 to 100 items, not 101");
    const auto one = parse_token_batch(items_of(1));
    ASSERT_TRUE(one) << message_of(one);
    EXPECT_EQ(one->size(), 1u);
    const auto hundred = parse_token_batch(items_of(100));
    ASSERT_TRUE(hundred) << message_of(hundred);
    ASSERT_EQ(hundred->size(), 100u);
    for (std::size_t i = 0; i < hundred->size(); ++i) {
        ASSERT_TRUE((*hundred)[i]);
        EXPECT_EQ((*hundred)[i]->user_id, "u" + std::to_string(i)); // in order
    }
}

TEST(TokenBatchParse, ValidItemsBecomeTheQueriesTheirGetWouldMake) {
    const auto r = parse_token_batch(R"({"requests":[
        {"user_id":"a@example.com","type":"zak","ttl":3600},
        {"user_id":"b"},
        {"user_id":"c","type":"onbehalf","meeting_id":"123456789"},
        {"user_id":"d","type":"token"}]})");
    ASSERT_TRUE(r) << message_of(r);
    ASSERT_EQ(r->size(), 4u);
    const char* targets[] = {"/token/a%40example.com?type=zak&ttl=3600", "/token/b",
                             "/token/c?type=onbehalf&meeting_id=123456789", "/token/d?type=token"};
    for (std::size_t i = 0; i < 4; ++i) {
        const auto get = parse_token_target(targets[i], false);
        ASSERT_TRUE(get && (*r)[i]) << targets[i];
        EXPECT_EQ((*r)[i]->user_id, get->user_id) << targets[i];
        EXPECT_EQ((*r)[i]->type, get->type) << targets[i];
        EXPECT_EQ((*r)[i]->ttl, get->ttl) << targets[i];
        EXPECT_EQ((*r)[i]->meeting_id, get->meeting_id) << targets[i];
    }
}

// An item whose values break the GET's rules fails alone, with the GET's error word for word.
TEST(TokenBatchParse, ABadItemFailsAloneWithItsGetsError) {
    const std::pair<const char*, const char*> items[] = {
        {R"({"user_id":"a/b"})", "/token/a%2Fb"},
        {R"({"user_id":"a%40b"})", "/token/a%2540b"}, // plain, not percent-decoded
        {R"({"user_id":".."})", "/token/.."},
        {R"({"user_id":""})", "/token/"},
        {R"({"user_id":"a b"})", "/token/a%20b"},
        {R"({"user_id":"a","ttl":59})", "/token/a?ttl=59"},
        {R"({"user_id":"a","ttl":31536001})", "/token/a?ttl=31536001"},
        {R"({"user_id":"a","ttl":-60})", "/token/a?ttl=abc"},
        {R"({"user_id":"a","ttl":18446744073709551615})", "/token/a?ttl=18446744073709551615"},
        {R"({"user_id":"a","type":"zpk"})", "/token/a?type=zpk"},
        {R"({"user_id":"a","type":"token","ttl":600})", "/token/a?type=token&ttl=600"},
        {R"({"user_id":"a","meeting_id":"123456789"})", "/token/a?meeting_id=123456789"},
        {R"({"user_id":"a","type":"onbehalf","meeting_id":"12345678"})",
         "/token/a?type=onbehalf&meeting_id=12345678"},
    };
    for (const auto& [item, target] : items) {
        const std::string body = std::string(R"({"requests":[{"user_id":"ok"},)") + item + "]}";
        const auto r = parse_token_batch(body);
        ASSERT_TRUE(r) << body << " -> " << message_of(r);
        ASSERT_EQ(r->size(), 2u);
        EXPECT_TRUE((*r)[0]) << "the good item stays good: " << body;
        const auto get = parse_token_target(target, false);
        ASSERT_FALSE(get) << target;
        ASSERT_FALSE((*r)[1]) << body;
        EXPECT_EQ((*r)[1].error().code, errc::invalid_request);
        EXPECT_EQ((*r)[1].error().message, get.error().message) << body;
    }
}

// ---- through HTTP -----------------------------------------------------------------------------------

constexpr std::string_view all_key = "batch-all-key-0123456789";
constexpr std::string_view team_key = "batch-team-key-0123456789";

void with_batch_keys(config& c) {
    c.auth.keys = {key_for("all", all_key, {"*"}), key_for("team", team_key, {"team-*", "unknown-*"})};
}

std::string post_text(std::string_view body, std::string_view headers) {
    return "POST /tokens HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + std::string(headers) + "\r\n" + std::string(body);
}

response_t post_tokens(client& c, std::string_view body, std::string_view headers = "") {
    c.send(post_text(body, headers));
    return c.read();
}

std::string batch_of(std::initializer_list<boost::json::value> items) {
    boost::json::array requests;
    for (const auto& item : items)
        requests.push_back(item);
    boost::json::object body;
    body["requests"] = std::move(requests);
    return boost::json::serialize(body);
}

// A JSON string's text (for comparisons with std::string).
std::string text_of(const boost::json::value& v) {
    return std::string(v.as_string());
}

boost::json::object user(std::string_view id) {
    return {{"user_id", id}};
}

boost::json::array results_of(const response_t& r) {
    const auto body = json_body(r);
    const auto* results = body.as_object().if_contains("results");
    return results ? results->as_array() : boost::json::array();
}

// The result without its status: what the GET's body would be.
boost::json::object body_of(const boost::json::value& result) {
    auto o = result.as_object();
    o.erase("status");
    return o;
}

unsigned status_of(const boost::json::value& result) {
    return static_cast<unsigned>(result.at("status").as_int64());
}

// The audit lines of one request (the broker logs JSON in these tests).
std::vector<boost::json::object> audit_lines(running_broker& b, std::string_view request_id) {
    std::vector<boost::json::object> out;
    std::istringstream lines(b.log.text());
    std::string line;
    while (std::getline(lines, line)) {
        auto v = boost::json::parse(line);
        const auto& o = v.as_object();
        if (o.contains("msg") && o.at("msg") == "audit" && text_of(o.at("request_id")) == request_id)
            out.push_back(o);
    }
    return out;
}

// One value of the metrics text, e.g. `token_broker_cache_hits_total`; -1 when absent.
double metric(const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    if (at == std::string::npos)
        return -1;
    return std::stod(text.substr(at + name.size() + 2));
}

using testing::eventually;

void json_logs_and_keys(config& c) {
    with_batch_keys(c);
    c.log.format = log_format::json;
}

// Each kind of item beside the others, each result held against what its GET alone answers. The GETs
// come after the batch, so what the batch fetched is cached by then: a miss's GET is a hit on the
// batch's own token (same token and expiry, `cached` true where the batch said false), an onbehalf
// GET fetches a new single-use token (only its shape compares), and the rest compare member for
// member (`expires_in` may have ticked by a second).
TEST(TokenBatch, EachResultIsWhatItsGetAnswers) {
    running_broker b(json_logs_and_keys);
    ASSERT_TRUE(b.wait_ready());
    const auto team = bearer(team_key);
    client c(b.port());
    const auto warm = c.get("/token/team-hit", team);
    ASSERT_EQ(warm.result_int(), 200) << warm.body();
    b.sim.reset_counters();

    const auto batch = post_tokens(c,
                                   batch_of({
                                       user("team-hit"),                          // 1: a hit
                                       {{"user_id", "team-miss"}, {"ttl", 3600}}, // 2: a miss
                                       user("unknown-1"),                         // 3: not at Zoom
                                       user("outsider"),                          // 4: not this key's
                                       {{"user_id", "team-bad"}, {"ttl", 59}},    // 5: invalid
                                       {{"user_id", "team-obo"},                  // 6: onbehalf
                                        {"type", "onbehalf"},
                                        {"meeting_id", "123456789"}},
                                       user("team-dup"), // 7 and 8: a
                                       user("team-dup"), //   duplicate pair
                                   }),
                                   team + "X-Request-Id: batch-each-1\r\n");
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    EXPECT_EQ(batch[http::field::cache_control], "no-store");
    EXPECT_EQ(batch["X-Request-Id"], "batch-each-1");
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 8u) << batch.body();

    // Zoom was asked once for each miss, once for the pair, never for the hit, the forbidden or the
    // invalid item.
    EXPECT_EQ(b.sim.token_calls("team-hit"), 0u);
    EXPECT_EQ(b.sim.token_calls("team-miss"), 1u);
    EXPECT_EQ(b.sim.token_calls("unknown-1"), 1u);
    EXPECT_EQ(b.sim.token_calls("outsider"), 0u);
    EXPECT_EQ(b.sim.token_calls("team-bad"), 0u);
    EXPECT_EQ(b.sim.token_calls("team-obo"), 1u);
    EXPECT_EQ(b.sim.token_calls("team-dup"), 1u);

    // One audit line per item, all with the batch's request id, in the key's name.
    const auto audits = audit_lines(b, "batch-each-1");
    ASSERT_EQ(audits.size(), 8u);
    std::multiset<std::string> audited_users;
    for (const auto& a : audits) {
        EXPECT_EQ(a.at("request_id"), "batch-each-1");
        EXPECT_EQ(a.at("key"), "team");
        audited_users.insert(std::string(a.at("user").as_string()));
    }
    EXPECT_EQ(audited_users, (std::multiset<std::string>{"team-hit", "team-miss", "unknown-1", "outsider",
                                                         "-", "team-obo", "team-dup", "team-dup"}));

    // 1, the hit: as its GET, member for member.
    const auto hit_get = c.get("/token/team-hit", team);
    ASSERT_EQ(status_of(results[0]), hit_get.result_int());
    auto hit = body_of(results[0]);
    auto hit_alone = json_body(hit_get).as_object();
    EXPECT_TRUE(hit.at("cached").as_bool());
    EXPECT_EQ(hit.at("token"), json_body(warm).at("token"));
    EXPECT_LE(std::abs(hit.at("expires_in").as_int64() - hit_alone.at("expires_in").as_int64()), 1);
    hit.erase("expires_in");
    hit_alone.erase("expires_in");
    EXPECT_EQ(hit, hit_alone);

    // 2, the miss: fetched by the batch, so its GET is a hit on the same token.
    const auto miss_get = c.get("/token/team-miss?ttl=3600", team);
    ASSERT_EQ(status_of(results[1]), 200u) << results[1];
    ASSERT_EQ(miss_get.result_int(), 200);
    auto miss = body_of(results[1]);
    auto miss_alone = json_body(miss_get).as_object();
    EXPECT_FALSE(miss.at("cached").as_bool());
    EXPECT_TRUE(miss_alone.at("cached").as_bool());
    for (const char* member : {"token", "type", "user_id", "expires_at"})
        EXPECT_EQ(miss.at(member), miss_alone.at(member)) << member;
    EXPECT_EQ(miss.size(), miss_alone.size());
    EXPECT_GE(miss.at("expires_in").as_int64(), 3598);
    EXPECT_EQ(b.sim.token_calls("team-miss"), 1u);

    // 3, the unknown user: the same 404 and Zoom code (the GET's comes from the remembered answer, so
    // its message says so; the batch's was Zoom's own).
    const auto unknown_get = c.get("/token/unknown-1", team);
    ASSERT_EQ(status_of(results[2]), unknown_get.result_int());
    EXPECT_EQ(status_of(results[2]), 404u);
    const auto unknown = body_of(results[2]);
    const auto unknown_alone = json_body(unknown_get).as_object();
    EXPECT_EQ(unknown.at("error").at("code"), unknown_alone.at("error").at("code"));
    EXPECT_EQ(unknown.at("error").at("zoom_code"), unknown_alone.at("error").at("zoom_code"));
    EXPECT_EQ(unknown.at("error").at("code"), "user_not_found");
    EXPECT_EQ(b.sim.token_calls("unknown-1"), 1u);

    // 4, forbidden, and 5, invalid: exactly their GETs' answers.
    const auto forbidden_get = c.get("/token/outsider", team);
    EXPECT_EQ(status_of(results[3]), 403u);
    EXPECT_EQ(status_of(results[3]), forbidden_get.result_int());
    EXPECT_EQ(body_of(results[3]), json_body(forbidden_get).as_object());
    const auto invalid_get = c.get("/token/team-bad?ttl=59", team);
    EXPECT_EQ(status_of(results[4]), 400u);
    EXPECT_EQ(status_of(results[4]), invalid_get.result_int());
    EXPECT_EQ(body_of(results[4]), json_body(invalid_get).as_object());

    // 6, onbehalf: never cached, so its GET fetches a token of its own; the shapes agree.
    const auto obo_get = c.get("/token/team-obo?type=onbehalf&meeting_id=123456789", team);
    ASSERT_EQ(status_of(results[5]), 200u) << results[5];
    ASSERT_EQ(obo_get.result_int(), 200);
    const auto obo = body_of(results[5]);
    const auto obo_alone = json_body(obo_get).as_object();
    EXPECT_FALSE(obo.at("cached").as_bool());
    EXPECT_FALSE(obo_alone.at("cached").as_bool());
    EXPECT_EQ(obo.at("type"), "onbehalf");
    EXPECT_EQ(obo.at("type"), obo_alone.at("type"));
    EXPECT_EQ(obo.at("user_id"), obo_alone.at("user_id"));
    EXPECT_EQ(obo.size(), obo_alone.size());
    EXPECT_NE(obo.at("token"), obo_alone.at("token"));
    EXPECT_EQ(b.sim.token_calls("team-obo"), 2u);

    // 7 and 8, the pair: one fetch, one token, which the GET then finds cached.
    ASSERT_EQ(status_of(results[6]), 200u);
    ASSERT_EQ(status_of(results[7]), 200u);
    EXPECT_EQ(results[6].at("token"), results[7].at("token"));
    const auto dup_get = c.get("/token/team-dup", team);
    EXPECT_EQ(json_body(dup_get).at("token"), results[6].at("token"));
    EXPECT_TRUE(json_body(dup_get).at("cached").as_bool());
    EXPECT_EQ(b.sim.token_calls("team-dup"), 1u);
}

TEST(TokenBatch, AHundredSlowUsersTakeAboutOneZoomRoundTrip) {
    constexpr auto latency = 300ms;
    running_broker b([](config& c) {
        c.zoom.requests_per_second = 1000;
        c.zoom.max_connections = 100;
        c.zoom.request_timeout = 20s;
    });
    ASSERT_TRUE(b.wait_ready());
    b.sim.reset_counters();
    b.sim.inject({.what = zoom_sim::fault::kind::delay, .delay = latency, .times = -1});
    boost::json::array items;
    for (int i = 0; i < 100; ++i)
        items.push_back(user("slow-" + std::to_string(i)));
    boost::json::object doc;
    doc["requests"] = items;
    const std::string body = boost::json::serialize(doc);

    client c(b.port(), 30s);
    const auto start = std::chrono::steady_clock::now();
    const auto batch = post_tokens(c, body);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 100u);
    for (std::size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(status_of(results[i]), 200u) << results[i];
        EXPECT_EQ(text_of(results[i].at("user_id")), "slow-" + std::to_string(i));
    }
    EXPECT_EQ(b.sim.token_calls(), 100u);
    // One after the other they would take 100 round trips (30 s); concurrently about one. The bound
    // is loose, for a shared machine: under 20 round trips.
    EXPECT_LT(took, 20 * latency) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                  << " ms";
}

TEST(TokenBatch, ADuplicatePairAndAConcurrentGetMakeOneZoomCall) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 1500ms, .times = -1}, "dup");
    client single(b.port());
    single.send("GET /token/dup HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The GET's fetch is at Zoom (which holds it 1.5 s) before the batch comes.
    ASSERT_TRUE(eventually([&] { return b.sim.token_calls("dup") == 1; }));

    client c(b.port());
    const auto batch = post_tokens(c, batch_of({user("dup"), user("dup")}));
    const auto alone = single.read();
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    ASSERT_EQ(alone.result_int(), 200) << alone.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 2u);
    for (const auto& r : results) {
        EXPECT_EQ(status_of(r), 200u) << r;
        EXPECT_EQ(r.at("token"), json_body(alone).at("token"));
        EXPECT_FALSE(r.at("cached").as_bool()) << "waited on the GET's fetch, not a hit";
    }
    EXPECT_EQ(b.sim.token_calls("dup"), 1u);
    EXPECT_EQ(metric(c.get("/metrics").body(), "token_broker_coalesced_requests_total"), 2);
}

TEST(TokenBatch, AHangingUsersItemIs504AtTheDeadlineWhileTheRestAre200) {
    constexpr auto timeout = 500ms;
    running_broker b([&](config& c) { c.zoom.request_timeout = timeout; });
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    ASSERT_EQ(c.get("/token/warm").result_int(), 200);
    b.sim.inject({.what = zoom_sim::fault::kind::hang, .times = -1}, "stuck");

    const auto start = std::chrono::steady_clock::now();
    const auto batch =
        post_tokens(c, batch_of({user("fresh-1"), user("stuck"), user("warm"), user("fresh-2")}));
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 4u);
    EXPECT_EQ(status_of(results[0]), 200u) << results[0];
    EXPECT_EQ(status_of(results[1]), 504u) << results[1];
    EXPECT_EQ(results[1].at("error").at("code"), "upstream_timeout");
    EXPECT_EQ(status_of(results[2]), 200u) << results[2];
    EXPECT_TRUE(results[2].at("cached").as_bool());
    EXPECT_EQ(status_of(results[3]), 200u) << results[3];
    // It waited for the deadline, and not much past it (deadline plus 200 ms of grace; loose bound).
    EXPECT_GE(took, timeout);
    EXPECT_LT(took, 6 * timeout);

    // The GET alone answers the same.
    const auto alone = c.get("/token/stuck");
    EXPECT_EQ(alone.result_int(), 504);
    EXPECT_EQ(error_code_of(alone), "upstream_timeout");
}

// Section 3: a batch read within server.header_timeout_ms is answered at its own deadline
// (zoom.request_timeout_ms plus 200 ms), however much shorter the header timeout is.
TEST(TokenBatch, AOneItemBatchForAUserZoomNeverAnswersIsAnsweredAfterTheHeaderTimeoutHasPassed) {
    running_broker b([](config& c) {
        c.server.header_timeout = 300ms;
        c.zoom.request_timeout = 1200ms;
    });
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::hang, .times = -1}, "stuck");
    client c(b.port());
    response_t batch;
    std::string failure;
    try {
        batch = post_tokens(c, batch_of({user("stuck")}));
    } catch (const std::exception& e) {
        failure = e.what();
    }
    ASSERT_TRUE(failure.empty()) << "no answer: " << failure;
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(status_of(results[0]), 504u) << results[0];
    EXPECT_EQ(results[0].at("error").at("code"), "upstream_timeout");
}

// With one request a second, the second item's turn in the budget comes a second after the first's:
// at its own deadline (zoom.request_timeout_ms, one second here). A call made then could not be
// answered in time and would still spend one of the account's calls: the item is refused by the
// budget (429) and Zoom is not called for it.
TEST(TokenBatch, AnItemWhoseTurnInTheBudgetComesAtItsDeadlineDoesNotCallZoom) {
    running_broker b([](config& c) {
        c.zoom.requests_per_second = 1;
        c.zoom.request_timeout = 1000ms;
    });
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    const auto batch = post_tokens(c, batch_of({user("first"), user("second")}));
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(status_of(results[0]), 200u) << results[0];
    EXPECT_EQ(status_of(results[1]), 429u) << results[1];
    const auto* error = results[1].as_object().if_contains("error");
    EXPECT_TRUE(error && error->at("code") == "rate_limited") << results[1];
    EXPECT_EQ(b.sim.token_calls("first"), 1u);
    EXPECT_EQ(b.sim.token_calls("second"), 0u) << "no Zoom call for a turn at the deadline";
}

TEST(TokenBatch, ABodyOverMaxBodyBytesIs413AndClosesTheConnection) {
    running_broker b([](config& c) { c.server.max_body_bytes = 1024; });
    ASSERT_TRUE(b.wait_ready());
    b.sim.reset_counters();

    // At the limit exactly: answered.
    std::string at_limit = batch_of({user("fits")});
    at_limit.insert(at_limit.size() - 1, 1024 - at_limit.size(), ' ');
    ASSERT_EQ(at_limit.size(), 1024u);
    client c(b.port());
    const auto fits = post_tokens(c, at_limit);
    EXPECT_EQ(fits.result_int(), 200) << fits.body();

    // One byte over: 413 body_too_large, and the connection ends.
    std::string over = at_limit;
    over.insert(over.size() - 1, " ");
    const auto refused = post_tokens(c, over);
    EXPECT_EQ(refused.result_int(), 413);
    EXPECT_EQ(error_code_of(refused), "body_too_large");
    EXPECT_NE(refused.body().find("1024"), std::string::npos) << refused.body();
    EXPECT_TRUE(c.closed_by_server());

    // Refused on its Content-Length alone, before the body is sent.
    client early(b.port());
    early.send("POST /tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    EXPECT_EQ(error_code_of(early.read()), "body_too_large");

    // Chunked, the same.
    client chunked(b.port());
    std::ostringstream chunks;
    chunks << "POST /tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i)
        chunks << std::hex << 512 << "\r\n" << std::string(512, ' ') << "\r\n";
    chunks << "0\r\n\r\n";
    chunked.send(chunks.str());
    const auto chunked_refused = chunked.read();
    EXPECT_EQ(chunked_refused.result_int(), 413);
    EXPECT_EQ(b.sim.token_calls(), 1u); // only "fits"
}

TEST(TokenBatch, AChunkedBodyWithinTheLimitIsRead) {
    running_broker b;
    client c(b.port());
    const std::string body = batch_of({user("chunky")});
    const auto half = body.size() / 2;
    std::ostringstream msg;
    msg << "POST /tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        << std::hex << half << "\r\n"
        << body.substr(0, half) << "\r\n"
        << std::hex << body.size() - half << "\r\n"
        << body.substr(half) << "\r\n0\r\n\r\n";
    c.send(msg.str());
    const auto r = c.read();
    ASSERT_EQ(r.result_int(), 200) << r.body();
    const auto results = results_of(r);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(status_of(results[0]), 200u);
    EXPECT_EQ(results[0].at("user_id"), "chunky");
}

// Every shape error is a 400 for the whole request, on a connection that stays open, and Zoom is
// never asked.
TEST(TokenBatch, AMalformedBodyIs400ForTheWholeRequest) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    b.sim.reset_counters();
    const std::pair<std::string, std::string> cases[] = {
        {"", "not JSON"},
        {"hello", "not JSON"},
        {R"({"requests":[{"user_id":"a"})", "not JSON"},
        {"[]", "must be a JSON object"},
        {items_of(0), "not 0"},
        {items_of(101), "not 101"},
        {R"({"requests":[{"user_id":"a"}],"more":[]})", "unknown member"},
        {R"({"requests":[{"user_id":"a"},{"user_id":"b","extra":1}]})", "item 2 has an unknown member"},
        {R"({"requests":[{"user_id":"a","ttl":"600"}]})", "item 1: ttl must be an integer"},
        {R"({"requests":[{"user_id":["a"]}]})", "item 1: user_id must be a string"},
        {R"({"requests":[{"user_id":"a"},{"user_id":"b"},{"user":"c"}]})", "item 3 has an unknown member"},
        // (As the JSON body holds the message: its quotes escaped.)
        {R"({"requests":[{"user_id":"a","user_id":"b"}]})",
         R"(item 1 has the member \"user_id\" more than once)"},
        {R"({"requests":[{"user_id":"a"}],"requests":[]})", R"(the member \"requests\" more than once)"},
    };
    client c(b.port());
    for (const auto& [body, says] : cases) {
        const auto r = post_tokens(c, body);
        EXPECT_EQ(r.result_int(), 400) << body;
        EXPECT_EQ(error_code_of(r), "invalid_request") << body;
        EXPECT_FALSE(json_body(r).as_object().contains("results")) << body;
        EXPECT_NE(r.body().find(says), std::string::npos) << body << " -> " << r.body();
    }
    EXPECT_EQ(b.sim.token_calls(), 0u);
    // Content-Type is not looked at: JSON is JSON.
    const auto plain = post_tokens(c, batch_of({user("typed")}), "Content-Type: text/plain\r\n");
    EXPECT_EQ(plain.result_int(), 200) << plain.body();
}

TEST(TokenBatch, OtherMethodsAre405WithAllowPost) {
    running_broker b;
    client c(b.port());
    const auto get = c.get("/tokens");
    EXPECT_EQ(get.result_int(), 405);
    EXPECT_EQ(get[http::field::allow], "POST");
    EXPECT_EQ(error_code_of(get), "method_not_allowed");
    for (const char* method : {"PUT", "DELETE", "PATCH"}) {
        c.send(std::string(method) + " /tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
        const auto r = c.read();
        EXPECT_EQ(r.result_int(), 405) << method;
        EXPECT_EQ(r[http::field::allow], "POST") << method;
    }
    c.send("HEAD /tokens HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto head = c.read_head();
    EXPECT_EQ(head.result_int(), 405);
    EXPECT_EQ(head[http::field::allow], "POST");
    // The token route's own methods stay its own.
    c.send(post_text(batch_of({user("a")}), "").replace(0, 12, "POST /token/a"));
    EXPECT_EQ(c.read().result_int(), 405);
    EXPECT_EQ(c.get("/tokens/a").result_int(), 404);
    EXPECT_EQ(b.sim.token_calls(), 0u);
}

TEST(TokenBatch, NeedsACallerKeyAndChecksEachUserAgainstIt) {
    running_broker b(with_batch_keys);
    client c(b.port());
    const auto body = batch_of({user("team-a"), user("someone")});
    const auto none = post_tokens(c, body);
    EXPECT_EQ(none.result_int(), 401);
    EXPECT_EQ(none[http::field::www_authenticate], "Bearer");
    EXPECT_EQ(post_tokens(c, body, bearer("not-a-key")).result_int(), 401);
    EXPECT_EQ(b.sim.token_calls(), 0u);

    const auto team = post_tokens(c, body, bearer(team_key));
    ASSERT_EQ(team.result_int(), 200);
    EXPECT_EQ(status_of(results_of(team)[0]), 200u);
    EXPECT_EQ(status_of(results_of(team)[1]), 403u);
    const auto all = post_tokens(c, body, bearer(all_key));
    EXPECT_EQ(status_of(results_of(all)[0]), 200u);
    EXPECT_EQ(status_of(results_of(all)[1]), 200u);
}

TEST(TokenBatch, CacheCountersMovePerItemAndTheRouteIsTokens) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    ASSERT_EQ(c.get("/token/h1").result_int(), 200);
    ASSERT_EQ(c.get("/token/h2").result_int(), 200);
    const auto before = c.get("/metrics").body();

    const auto batch = post_tokens(c, batch_of({user("h1"), user("m1"), user("h2"), user("m2"), user("m3")}));
    ASSERT_EQ(batch.result_int(), 200);
    EXPECT_EQ(c.get("/tokens").result_int(), 405);
    EXPECT_EQ(post_tokens(c, "nope").result_int(), 400);
    const auto after = c.get("/metrics").body();

    EXPECT_EQ(
        metric(after, "token_broker_cache_hits_total") - metric(before, "token_broker_cache_hits_total"), 2);
    EXPECT_EQ(metric(after, "token_broker_cache_misses_total") -
                  metric(before, "token_broker_cache_misses_total"),
              3);
    EXPECT_EQ(metric(after, R"(token_broker_requests_total{code="200",route="tokens"})"), 1) << after;
    EXPECT_EQ(metric(after, R"(token_broker_requests_total{code="405",route="tokens"})"), 1) << after;
    EXPECT_EQ(metric(after, R"(token_broker_requests_total{code="400",route="tokens"})"), 1) << after;
    EXPECT_EQ(metric(after, R"(token_broker_requests_total{code="200",route="token"})"), 2) << after;
}

TEST(TokenBatch, ItemsAreAuditedWithTheBatchsRequestIdAndWhereTheyCameFrom) {
    running_broker b(json_logs_and_keys);
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    const auto all = bearer(all_key);
    ASSERT_EQ(c.get("/token/cached", all).result_int(), 200);
    ASSERT_EQ(c.get("/token/unknown-9", all).result_int(), 404);
    b.sim.inject({.what = zoom_sim::fault::kind::server_error, .status = 500, .times = -1}, "failing");
    const auto batch = post_tokens(c,
                                   batch_of({user("cached"),
                                             user("new"),
                                             user("unknown-9"),
                                             user("failing"),
                                             {{"user_id", "x"}, {"type", "zpk"}}}),
                                   all + "X-Request-Id: audited-batch\r\n");
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    std::map<std::string, boost::json::object> by_user;
    for (auto& a : audit_lines(b, "audited-batch")) {
        EXPECT_EQ(a.at("request_id"), "audited-batch");
        EXPECT_EQ(a.at("key"), "all");
        by_user[std::string(a.at("user").as_string())] = a;
    }
    ASSERT_EQ(by_user.size(), 5u);
    EXPECT_EQ(by_user["cached"].at("source"), "cache");
    EXPECT_EQ(by_user["cached"].at("status"), 200);
    EXPECT_EQ(by_user["new"].at("source"), "zoom");
    EXPECT_EQ(by_user["unknown-9"].at("source"), "cache");
    EXPECT_EQ(by_user["unknown-9"].at("status"), 404);
    EXPECT_EQ(by_user["failing"].at("source"), "zoom");
    EXPECT_EQ(by_user["failing"].at("status"), 502);
    EXPECT_EQ(by_user["-"].at("source"), "-");
    EXPECT_EQ(by_user["-"].at("status"), 400);
}

// ---- the deadline of the endpoint itself, with a Zoom that takes longer than it -------------------

// Answers "late-*" users after `delay`, others at once; counts the fetches that ended.
class late_zoom final : public token_source {
public:
    explicit late_zoom(std::chrono::milliseconds delay) : delay_(delay) {}
    std::atomic<int> finished{0};

    net::awaitable<result<secret>> fetch_token(token_query q) override {
        if (q.user_id.starts_with("late")) {
            net::steady_timer t(co_await net::this_coro::executor, delay_);
            co_await t.async_wait(net::as_tuple(net::use_awaitable));
        }
        ++finished;
        co_return secret("opaque-" + q.user_id);
    }
    readiness ready() const override { return {true, {}}; }

private:
    std::chrono::milliseconds delay_;
};

// The endpoint's own deadline (batch_timeout plus 200 ms) answers an item whose fetch outlasts it
// 504, without holding the others; the fetch still fills the cache, and its late end writes nothing
// into the connection's next request.
TEST(TokenBatchDeadline, AnItemStillWaitingAtTheDeadlineIs504AndItsFetchStillFillsTheCache) {
    late_zoom zoom(1500ms);
    testing::captured_log log;
    metrics m;
    net::io_context refreshes; // the service's executor for background refreshes: unused here
    token_service service(refreshes.get_executor(), zoom, cache_config{}, m, log.logger);
    token_endpoint endpoint(service, std::make_shared<const authenticator>(), log_format::text, log.logger,
                            100ms);
    router routes(
        m, [] { return std::optional<std::string>(); }, &endpoint);
    testing::running_server srv(server_config{}, routes, log.logger, m);

    client c(srv.port());
    const auto batch =
        post_tokens(c, batch_of({user("quick"), user("late-1")}), "X-Request-Id: deadline-1\r\n");
    ASSERT_EQ(batch.result_int(), 200) << batch.body();
    const auto results = results_of(batch);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(status_of(results[0]), 200u);
    EXPECT_EQ(status_of(results[1]), 504u);
    EXPECT_EQ(results[1].at("error").at("code"), "upstream_timeout");
    EXPECT_EQ(zoom.finished.load(), 1) << "answered before the late fetch ended";

    // The connection goes on while the late fetch is still under way.
    EXPECT_EQ(c.get("/token/quick", "X-Request-Id: next-1\r\n").result_int(), 200);
    ASSERT_TRUE(eventually([&] { return service.size() == 2; })) << "the late fetch's token is cached";
    const auto late = c.get("/token/late-1", "X-Request-Id: next-2\r\n");
    ASSERT_EQ(late.result_int(), 200) << late.body();
    EXPECT_TRUE(json_body(late).at("cached").as_bool()) << "the late fetch filled the cache";

    // The audit lines alone (the log holds the service's debug lines too).
    std::vector<std::string> audits;
    std::istringstream lines(log.text());
    for (std::string line; std::getline(lines, line);)
        if (line.find(" audit request_id=") != std::string::npos)
            audits.push_back(line);
    auto count = [&](std::string_view needle) {
        return std::count_if(audits.begin(), audits.end(),
                             [&](const std::string& a) { return a.find(needle) != std::string::npos; });
    };
    EXPECT_EQ(count("request_id=deadline-1 "), 2) << log.text();
    EXPECT_EQ(count("request_id=next-1 "), 1) << log.text();
    EXPECT_EQ(count("request_id=next-2 "), 1) << log.text();
    EXPECT_EQ(count(" user=late-1 "), 2) << log.text(); // the 504, then the GET's hit
    EXPECT_EQ(audits.size(), 4u) << log.text();
}

} // namespace
} // namespace token_broker
