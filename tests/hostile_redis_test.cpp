// A broker process whose Redis says what no Redis should (CONTRACT.md section 7, "What Redis may
// answer" and "When Redis fails"): a fake server on loopback (tests/fake_redis.hpp) answers the
// handshake as Redis does and every later command with the test's bytes. Whatever those are, the
// broker drops the connection or treats the answer as Redis failing, keeps its memory, and goes on
// answering callers as a lone replica.
#include "broker_process.hpp"
#include "fake_redis.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using test::fake_redis;
using testing::broker_process;
using testing::client;
using testing::eventually;

const std::string auth = "Authorization: Bearer first-key-0123456789\r\n";
const std::string encryption_key(64, 'a');

boost::json::object redis_block(const fake_redis& redis) {
    // A long command timeout: a reply that is too large must be refused for its size, at once, not
    // when the command's time is up.
    return {
        {"redis", {{"url", redis.url()}, {"encryption_key", encryption_key}, {"command_timeout_ms", 5000}}}};
}

// A figure of /proc/PID/status in KiB ("VmSize", "VmRSS"); -1 when it cannot be read.
long status_kib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(field + ":"))
            return std::stol(line.substr(field.size() + 1));
    return -1;
}

// The status and body of a GET, or 0 and why none came.
std::pair<int, std::string> get(std::uint16_t port, const std::string& target) {
    try {
        client c(port);
        const auto r = c.get(target, auth);
        return {static_cast<int>(r.result_int()), r.body()};
    } catch (const std::exception& e) {
        return {0, e.what()};
    }
}

// The hostile reply meets every command after the handshake, on every connection: each time the
// broker drops the connection, names the limit, and reconnects; meanwhile it answers /healthz and
// callers, and its memory stays far from what the reply announced.
void expect_refused_for_its_size(const fake_redis::answer& hostile) {
    zoom_sim::simulator sim;
    fake_redis redis([hostile](const std::vector<std::string>&) { return hostile; });
    auto broker = broker_process::start(sim, redis_block(redis));
    const auto port = broker->wait_port();
    ASSERT_NE(port, 0);
    ASSERT_TRUE(eventually([&] { return redis.closed_by_client() >= 3; }, 30s))
        << "the broker never dropped the connection; " << redis.closed_by_client() << " closed\n"
        << broker->output();
    EXPECT_NE(broker->output().find("max_reply_bytes"), std::string::npos) << broker->output();

    EXPECT_EQ(get(port, "/healthz").first, 200);
    const auto token = get(port, "/token/alone@example.com");
    EXPECT_EQ(token.first, 200) << token.second;

    // Nothing near the gigabytes announced: the broker's own size, with room to spare.
    const long size = status_kib(broker->pid(), "VmSize");
    const long rss = status_kib(broker->pid(), "VmRSS");
    ASSERT_GT(size, 0);
    EXPECT_LT(size, 4L * 1024 * 1024) << "VmSize in KiB";
    EXPECT_LT(rss, 256L * 1024) << "VmRSS in KiB";
}

TEST(HostileRedis, AnArrayOfTwoBillionElementsIsRefusedForItsSize) {
    expect_refused_for_its_size({"*2147483647\r\n"});
}

TEST(HostileRedis, AnArrayOfAHundredMillionElementsIsRefusedForItsSize) {
    expect_refused_for_its_size({"*100000000\r\n"});
}

TEST(HostileRedis, AnEndlessBulkStringIsRefusedOnceItPassesTheLimit) {
    expect_refused_for_its_size({"$1000000000\r\n", 64u * 1024 * 1024});
}

} // namespace
} // namespace token_broker
