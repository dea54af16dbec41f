// A broker process whose Redis says what no Redis should (CONTRACT.md section 7, "What Redis may
// answer" and "When Redis fails"): a fake server on loopback (tests/fake_redis.hpp) answers the
// handshake as Redis does and every later command with the test's bytes. Whatever those are, the
// broker drops the connection or treats the answer as Redis failing, keeps its memory, and goes on
// answering callers as a lone replica.
#include "broker_process.hpp"
#include "fake_redis.hpp"
#include "zoom/shared_budget.hpp"

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
using testing::get_with_key;

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

    EXPECT_EQ(get_with_key(port, "/healthz").status, 200);
    const auto token = get_with_key(port, "/token/alone@example.com");
    EXPECT_EQ(token.status, 200) << token.body;

    // Nothing near the gigabytes announced: the broker's own size, with room to spare.
    const long size = status_kib(broker->pid(), "VmSize");
    const long rss = status_kib(broker->pid(), "VmRSS");
    ASSERT_GT(size, 0);
#ifndef __SANITIZE_ADDRESS__
    // Under AddressSanitizer (the broker is built as the tests are) the address space holds about
    // 20 TiB of shadow memory reserved at start, so only the resident size says anything there.
    EXPECT_LT(size, 4L * 1024 * 1024) << "VmSize in KiB";
#endif
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

// Section 7: Redis answering nonsense never turns an answer the broker could give into an error.
// A Redis that answers `:1` to everything once made every miss a 429: PTTL of the 429 block said
// one millisecond was left.
TEST(HostileRedis, OneAsTheAnswerToEverythingIsNoBlock) {
    zoom_sim::simulator sim;
    fake_redis redis([](const std::vector<std::string>&) { return fake_redis::answer{":1\r\n"}; });
    auto broker = broker_process::start(sim, redis_block(redis));
    const auto port = broker->wait_port();
    ASSERT_NE(port, 0);
    for (const char* user : {"one", "two", "three"}) {
        const auto r = get_with_key(port, std::string("/token/") + user);
        EXPECT_EQ(r.status, 200) << user << ": " << r.body;
        EXPECT_EQ(sim.token_calls(user), 1u) << user;
    }
}

// The budget's script answering what it cannot mean (a refusal without a wait, a verdict other than
// 0 or 1, a grant later than the caller can wait) is Redis failing: the replica goes by its own
// budget. Every other command is refused, as a Redis without the script's permissions would.
TEST(HostileRedis, ContradictoryBudgetRepliesAreRedisFailing) {
    zoom_sim::simulator sim;
    const std::vector<std::string> nonsense = {
        "*2\r\n:0\r\n:0\r\n",
        "*2\r\n:7\r\n:0\r\n",
        "*2\r\n:1\r\n:999999999999\r\n",
    };
    auto next = std::make_shared<std::atomic<std::size_t>>(0);
    const std::string gcra = gcra_script().sha1();
    fake_redis redis([&, next](const std::vector<std::string>& command) {
        if (command[0] == "EVALSHA" && command.size() > 1 && command[1] == gcra)
            return fake_redis::answer{nonsense[next->fetch_add(1) % nonsense.size()]};
        return fake_redis::answer{"-ERR not in this test\r\n"};
    });
    auto broker = broker_process::start(sim, redis_block(redis));
    const auto port = broker->wait_port();
    ASSERT_NE(port, 0);
    for (const char* user : {"first", "second", "third"}) {
        const auto r = get_with_key(port, std::string("/token/") + user);
        EXPECT_EQ(r.status, 200) << user << ": " << r.body;
        EXPECT_EQ(sim.token_calls(user), 1u) << user;
    }
    EXPECT_GE(next->load(), 3u) << "the budget's script was asked for each miss";
}

} // namespace
} // namespace token_broker
