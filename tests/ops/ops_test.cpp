// The operators' kit against a running broker (token-broker as a child process, the Zoom simulator,
// a real redis-server):
// - every metric that the alert rules (docker/prometheus/alerts.yaml) and the dashboard
//   (docker/grafana/token-broker.json) name is one the broker exports, with the labels they select
//   on; the few that only later work brings are listed with the reason, and must be in the
//   contract's metrics table;
// - the broker's real answers (200, every error code it can be made to give against the simulator,
//   the batch, the probes, /metrics) validate against docs/openapi.yaml, with Ajv
//   (tests/ops/openapi_answers.mjs).
#include "broker_process.hpp"
#include "redis_server.hpp"
#include "webhook/signature.hpp"
#include "webhook_support.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::broker_process;
using testing::client;
using testing::eventually;

const std::string source_dir = SOURCE_DIR;
const std::string auth = "Authorization: Bearer first-key-0123456789\r\n";

std::string file_text(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every token_broker_* name in `text`.
std::set<std::string> metric_names(const std::string& text) {
    static const std::regex name(R"(token_broker_[a-z0-9_]*[a-z0-9])");
    std::set<std::string> out;
    for (std::sregex_iterator i(text.begin(), text.end(), name), end; i != end; ++i)
        out.insert(i->str());
    return out;
}

// Every label a selector `token_broker_x{label="...", ...}` in `text` matches on, by metric. The
// target labels Prometheus adds (job, instance) are not the broker's.
std::map<std::string, std::set<std::string>> selected_labels(const std::string& text) {
    static const std::regex selector(R"((token_broker_[a-z0-9_]+)\{([^}]*)\})");
    static const std::regex matcher(R"(([a-z_]+)\s*(=~|!~|!=|=))");
    std::map<std::string, std::set<std::string>> out;
    for (std::sregex_iterator i(text.begin(), text.end(), selector), end; i != end; ++i) {
        const std::string inside = (*i)[2];
        for (std::sregex_iterator m(inside.begin(), inside.end(), matcher); m != end; ++m)
            if ((*m)[1] != "job" && (*m)[1] != "instance")
                out[(*i)[1]].insert((*m)[1]);
    }
    return out;
}

// The expressions of the dashboard's panels and variables, one a line.
std::string dashboard_expressions(const std::string& json_text) {
    const auto dash = boost::json::parse(json_text).as_object();
    std::string out;
    std::size_t targets = 0;
    for (const auto& p : dash.at("panels").as_array()) {
        const auto& panel = p.as_object();
        if (panel.at("type").as_string() == "row")
            continue;
        const auto* t = panel.if_contains("targets");
        EXPECT_TRUE(t && !t->as_array().empty()) << "panel without a query: " << panel.at("title");
        if (!t)
            continue;
        for (const auto& target : t->as_array()) {
            out += target.as_object().at("expr").as_string();
            out += '\n';
            ++targets;
        }
    }
    for (const auto& v : dash.at("templating").as_object().at("list").as_array())
        if (const auto* d = v.as_object().if_contains("definition"))
            out += std::string(d->as_string()) + '\n';
    EXPECT_GE(targets, 20u) << "the dashboard's queries were not all found";
    return out;
}

// What one scrape of /metrics exports: each series' metric name and its label names.
std::map<std::string, std::set<std::string>> scraped(const std::string& exposition) {
    static const std::regex label(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
    std::map<std::string, std::set<std::string>> out;
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#')
            continue;
        const auto end = line.find_first_of("{ ");
        auto& labels = out[line.substr(0, end)];
        if (end != std::string::npos && line[end] == '{') {
            const auto close = line.find('}', end);
            const std::string inside = line.substr(end + 1, close - end - 1);
            for (std::sregex_iterator i(inside.begin(), inside.end(), label), stop; i != stop; ++i)
                labels.insert((*i)[1]);
        }
    }
    return out;
}

boost::json::object redis_block(const test::redis_server& server) {
    return {{"url", "redis://127.0.0.1:" + std::to_string(server.port())},
            {"password", server.password()},
            {"encryption_key", std::string(64, 'e')}};
}

std::string get_body(std::uint16_t port, const std::string& target, const std::string& headers = "") {
    try {
        return client(port).get(target, headers).body();
    } catch (const std::exception& e) {
        return e.what();
    }
}

TEST(OperatorsKit, EveryMetricTheAlertRulesAndTheDashboardNameIsExportedWithTheLabelsTheySelect) {
    const auto rules = file_text(source_dir + "/docker/prometheus/alerts.yaml");
    const auto dashboard = dashboard_expressions(file_text(source_dir + "/docker/grafana/token-broker.json"));
    auto named = metric_names(rules);
    const auto in_dashboard = metric_names(dashboard);
    ASSERT_GE(named.size(), 10u) << "the rules' metrics were not found";
    ASSERT_GE(in_dashboard.size(), 15u) << "the dashboard's metrics were not found";
    named.insert(in_dashboard.begin(), in_dashboard.end());
    auto selectors = selected_labels(rules);
    for (const auto& [metric, labels] : selected_labels(dashboard))
        selectors[metric].insert(labels.begin(), labels.end());

    // The Redis metrics exist only with redis.url, the webhook's with a webhook port; a hit, a miss,
    // an unknown user and an unsigned webhook request fill the rest.
    test::redis_server redis;
    zoom_sim::simulator sim;
    auto broker = broker_process::start(sim, {{"redis", redis_block(redis)}}, "ops-webhook-secret");
    const auto port = broker->wait_port();
    ASSERT_TRUE(eventually([&] { return get_body(port, "/readyz") == R"({"status":"ready","redis":"up"})"; }))
        << get_body(port, "/readyz");
    for (const auto* user : {"jdoe@example.com", "jdoe@example.com", "unknown-user"})
        get_body(port, std::string("/token/") + user, auth);
    client hook(broker->webhook_port());
    hook.send("POST /zoom/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              "Content-Length: 2\r\n\r\n{}");
    ASSERT_EQ(hook.read().result_int(), 401u) << "an unsigned webhook request";
    const auto exported = scraped(get_body(port, "/metrics"));
    ASSERT_TRUE(exported.count("token_broker_requests_total")) << "no metrics scraped";

    for (const auto& metric : named) {
        const auto found = exported.find(metric);
        if (found == exported.end()) {
            ADD_FAILURE() << metric
                          << " is named by an alert rule or a panel but the broker does not export it";
            continue;
        }
        for (const auto& label : selectors[metric])
            EXPECT_TRUE(found->second.count(label))
                << metric << " is selected on the label " << label << ", which it does not have";
    }
}

// One answer of the broker, as openapi_answers.mjs validates it: `operation` and `path` name the
// operation of docs/openapi.yaml whose responses describe it (a 405 is described on the route's
// own operations, whatever method was sent).
struct recorded_answer {
    std::string operation;
    std::string path;
    unsigned status = 0;
    std::string content_type;
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;

    std::string code() const {
        try {
            return std::string(boost::json::parse(body).at("error").at("code").as_string());
        } catch (const std::exception&) {
            return {};
        }
    }
};

class answer_recorder {
public:
    // Sends `raw` (a whole HTTP/1.1 request) to `port` and records the answer.
    const recorded_answer& send(std::uint16_t port, std::string operation, std::string path,
                                const std::string& raw) {
        recorded_answer a;
        a.operation = std::move(operation);
        a.path = std::move(path);
        try {
            client c(port, 15s);
            c.send(raw);
            const auto r = c.read();
            a.status = r.result_int();
            for (const auto& field : r.base()) {
                std::string name(field.name_string());
                std::transform(name.begin(), name.end(), name.begin(),
                               [](unsigned char ch) { return std::tolower(ch); });
                a.headers[name] = std::string(field.value());
            }
            a.content_type = a.headers.count("content-type") ? a.headers["content-type"] : "";
            a.body = r.body();
        } catch (const std::exception& e) {
            a.body = e.what();
        }
        answers_.push_back(std::move(a));
        return answers_.back();
    }

    static std::string request(const std::string& method, const std::string& target,
                               const std::string& headers = auth, const std::string& body = {}) {
        std::string r = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + headers;
        if (!body.empty() || method == "POST")
            r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
        return r + "\r\n" + body;
    }

    const std::vector<recorded_answer>& answers() const { return answers_; }

    static std::string to_json(const std::vector<recorded_answer>& answers) {
        boost::json::array out;
        for (const auto& a : answers) {
            boost::json::object headers;
            for (const auto& [k, v] : a.headers)
                headers[k] = v;
            out.push_back(boost::json::object{{"method", a.operation},
                                              {"path", a.path},
                                              {"status", a.status},
                                              {"content_type", a.content_type},
                                              {"headers", std::move(headers)},
                                              {"body", a.body}});
        }
        return boost::json::serialize(out);
    }

private:
    std::vector<recorded_answer> answers_;
};

// Runs the validator on `answers`; its exit status, and what it printed in `output`.
int validate(const std::vector<recorded_answer>& answers, const std::string& name, std::string& output) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("token-broker-openapi-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / (name + ".json");
    std::ofstream(file) << answer_recorder::to_json(answers);
    const std::string command = std::string(NODE_BINARY) + " " + source_dir +
                                "/tests/ops/openapi_answers.mjs " + source_dir + "/docs/openapi.yaml " +
                                file.string() + " 2>&1";
    output.clear();
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe)
        return -1;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;)
        output.append(chunk, n);
    const int status = ::pclose(pipe);
    std::filesystem::remove_all(dir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(OpenApi, TheBrokersRealAnswersValidateAgainstTheirSchemas) {
    zoom_sim::simulator sim;
    sim.add_user("google@example.com", {.google_login = true});
    const boost::json::object zoom_block{{"zoom", {{"request_timeout_ms", 1500}, {"max_retries", 0}}}};
    const std::string hook_secret = "ops-webhook-secret";
    auto broker = broker_process::start(sim, zoom_block, hook_secret);
    const auto port = broker->wait_port();
    ASSERT_TRUE(eventually([&] { return get_body(port, "/readyz") == R"({"status":"ready"})"; }));
    // A second key that may ask only for team-* users.
    broker->write_raw_keys(R"({"keys": [{"name": "first", "sha256": ")" +
                           testing::hex(sha256("first-key-0123456789")) +
                           R"(", "users": ["*"]}, {"name": "team", "sha256": ")" +
                           testing::hex(sha256("team-key-0123456789")) + R"(", "users": ["team-*"]}]})");
    broker->signal(SIGHUP);
    const std::string team_auth = "Authorization: Bearer team-key-0123456789\r\n";
    ASSERT_TRUE(eventually(
        [&] { return get_body(port, "/token/team-a", team_auth).find("\"token\"") != std::string::npos; }));

    answer_recorder rec;
    using R = answer_recorder;
    const std::string token = "/token/{userId}";
    struct expectation {
        unsigned status;
        std::string code;
    };
    std::vector<expectation> expected;
    auto expect = [&](const recorded_answer& a, unsigned status, std::string code = {}) {
        EXPECT_EQ(a.status, status) << a.operation << " " << a.path << ": " << a.body;
        if (!code.empty()) {
            EXPECT_EQ(a.code(), code) << a.body;
        }
        expected.push_back({status, code});
    };

    expect(rec.send(port, "get", "/healthz", R::request("GET", "/healthz", "")), 200);
    expect(rec.send(port, "get", "/readyz", R::request("GET", "/readyz", "")), 200);
    expect(rec.send(port, "get", "/metrics", R::request("GET", "/metrics", "")), 200);
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com?type=zak&ttl=3600")), 200);
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com?type=zak&ttl=3600")), 200);
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com?type=token")), 200);
    expect(rec.send(port, "get", token, R::request("GET", "/token/google@example.com?type=token")), 404,
           "token_unavailable");
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com?type=zpk")), 400,
           "invalid_request");
    sim.inject({.what = zoom_sim::fault::kind::server_error, .status = 400}, "rejected@example.com");
    expect(rec.send(port, "get", token, R::request("GET", "/token/rejected@example.com")), 400,
           "upstream_rejected");
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com", "")), 401,
           "unauthorized");
    expect(rec.send(port, "get", token, R::request("GET", "/token/jdoe@example.com", team_auth)), 403,
           "forbidden");
    expect(rec.send(port, "get", token, R::request("GET", "/token/unknown-user")), 404, "user_not_found");
    expect(rec.send(port, "get", token, R::request("PUT", "/token/jdoe@example.com")), 405,
           "method_not_allowed");
    expect(rec.send(port, "get", "/healthz", R::request("POST", "/healthz", "")), 405, "method_not_allowed");
    expect(rec.send(port, "post", "/tokens", R::request("GET", "/tokens")), 405, "method_not_allowed");
    expect(rec.send(port, "get", token,
                    R::request("GET", "/token/jdoe@example.com",
                               auth + "X-Padding: " + std::string(9000, 'p') + "\r\n")),
           431, "headers_too_large");
    // Refused on its Content-Length alone, before any body is sent.
    expect(rec.send(port, "post", "/tokens",
                    "POST /tokens HTTP/1.1\r\nHost: localhost\r\n" + auth +
                        "Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n"),
           413, "body_too_large");
    sim.inject({.what = zoom_sim::fault::kind::server_error, .status = 500}, "broken@example.com");
    expect(rec.send(port, "get", token, R::request("GET", "/token/broken@example.com")), 502,
           "upstream_error");
    sim.inject({.what = zoom_sim::fault::kind::hang}, "slow@example.com");
    expect(rec.send(port, "get", token, R::request("GET", "/token/slow@example.com")), 504,
           "upstream_timeout");
    expect(rec.send(
               port, "post", "/tokens",
               R::request("POST", "/tokens", auth,
                          R"({"requests": [{"user_id": "jdoe@example.com", "type": "zak", "ttl": 3600},)"
                          R"( {"user_id": "unknown-batch"}, {"user_id": "b@example.com", "type": "zpk"}]})")),
           200);
    EXPECT_NE(rec.answers().back().body.find(R"("status":404)"), std::string::npos)
        << rec.answers().back().body;
    expect(rec.send(port, "post", "/tokens", R::request("POST", "/tokens", auth, R"({"requests": []})")), 400,
           "invalid_request");
    expect(rec.send(port, "delete", token, R::request("DELETE", "/token/jdoe@example.com")), 204);
    sim.inject({.what = zoom_sim::fault::kind::rate_limited, .retry_after = "1"}, "busy@example.com");
    const auto& limited = rec.send(port, "get", token, R::request("GET", "/token/busy@example.com"));
    expect(limited, 429, "rate_limited");
    EXPECT_TRUE(limited.headers.count("retry-after")) << limited.body;
    // The webhook listener: Zoom's signed requests, and what it refuses.
    const auto hook_port = broker->webhook_port();
    const std::string hook = "/zoom/webhook";
    const auto signed_post = [&](const std::string& body) {
        const auto ts = testing::unix_seconds_now();
        return R::request("POST", hook,
                          "x-zm-request-timestamp: " + ts +
                              "\r\nx-zm-signature: " + webhook::signature(hook_secret, ts, body) + "\r\n",
                          body);
    };
    expect(
        rec.send(
            hook_port, "post", hook,
            signed_post(
                R"({"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}})")),
        200);
    expect(rec.send(hook_port, "post", hook,
                    signed_post(testing::user_event("user.deactivated", "KDcuGIm1QgePTO8WbOqwIQ",
                                                    "jdoe@example.com", sim.settings().account_id))),
           200);
    expect(rec.send(hook_port, "post", hook, signed_post("not json")), 400, "invalid_request");
    expect(rec.send(hook_port, "post", hook, R::request("POST", hook, "", R"({"event":"x","payload":{}})")),
           401);
    expect(rec.send(hook_port, "post", hook,
                    "POST /zoom/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    "Content-Length: 10000000\r\n\r\n"),
           413, "body_too_large");
    // A broker whose Zoom API address nobody listens on (its OAuth endpoint works): Zoom cannot be
    // reached.
    auto unreachable = broker_process::start(
        sim,
        {{"zoom",
          {{"request_timeout_ms", 1500}, {"max_retries", 0}, {"api_base_url", "https://127.0.0.1:1/v2"}}}});
    const auto unreachable_port = unreachable->wait_port();
    ASSERT_TRUE(eventually([&] { return get_body(unreachable_port, "/readyz") == R"({"status":"ready"})"; }));
    expect(rec.send(unreachable_port, "get", token, R::request("GET", "/token/gone@example.com")), 503,
           "upstream_unavailable");

    // A broker whose OAuth fails: not ready.
    zoom_sim::simulator failing;
    failing.inject_oauth({.what = zoom_sim::fault::kind::server_error, .status = 500, .times = -1});
    auto unready = broker_process::start(failing, zoom_block);
    const auto unready_port = unready->wait_port();
    ASSERT_TRUE(
        eventually([&] { return get_body(unready_port, "/readyz").find("not_ready") != std::string::npos; }));
    expect(rec.send(unready_port, "get", "/readyz", R::request("GET", "/readyz", "")), 503, "not_ready");
    expect(rec.send(unready_port, "get", token, R::request("GET", "/token/jdoe@example.com")), 503,
           "not_ready");

    // A broker whose Redis went away: a DELETE cannot be confirmed.
    test::redis_server redis;
    zoom_sim::simulator third;
    auto shared = broker_process::start(third, {{"redis", redis_block(redis)}});
    const auto shared_port = shared->wait_port();
    ASSERT_TRUE(
        eventually([&] { return get_body(shared_port, "/readyz") == R"({"status":"ready","redis":"up"})"; }));
    expect(rec.send(shared_port, "get", "/readyz", R::request("GET", "/readyz", "")), 200);
    redis.stop();
    expect(rec.send(shared_port, "delete", token, R::request("DELETE", "/token/jdoe@example.com")), 503,
           "cache_unavailable");

    // Every error code of the contract's table that the broker gives against the simulator.
    std::set<std::string> codes;
    for (const auto& e : expected) {
        if (!e.code.empty())
            codes.insert(e.code);
    }
    EXPECT_EQ(codes.size(), 15u) << "a code of CONTRACT.md section 3 is missing from the answers validated";

    std::string output;
    EXPECT_EQ(validate(rec.answers(), "answers", output), 0) << output;
    EXPECT_NE(output.find(std::to_string(rec.answers().size()) + " passed, 0 failed"), std::string::npos)
        << output;

    // The validator rejects what breaks a schema: a token answer whose "cached" is not a boolean, and
    // an error answer without its code.
    auto broken = std::vector<recorded_answer>{rec.answers()[3], rec.answers()[7]};
    const auto at = broken[0].body.find(R"("cached":false)");
    ASSERT_NE(at, std::string::npos) << broken[0].body;
    broken[0].body.replace(at, 14, R"("cached":"no")");
    broken[1].body = R"({"error":{"message":"no code"}})";
    EXPECT_EQ(validate(broken, "broken", output), 1) << output;
    EXPECT_NE(output.find("0 passed, 2 failed"), std::string::npos) << output;
}

} // namespace
} // namespace token_broker
