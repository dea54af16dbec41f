// The command line: parse_command_line in process, and the built token-broker binary as a process
// (its exit status, stdout and stderr).
#include "app/command_line.hpp"
#include "auth/auth.hpp"
#include "config/config.hpp"
#include "core/net.hpp"
#include "test_certs.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace token_broker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// --- parse_command_line ------------------------------------------------------------------------------

command_line parse(std::vector<const char*> args) {
    args.insert(args.begin(), "token-broker");
    return parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(ParseCommandLine, RecordsWhatWasAsked) {
    const command_line cli = parse({"--config", "broker.json", "--check-config"});
    EXPECT_EQ(cli.config_file, "broker.json");
    EXPECT_TRUE(cli.check_config);
    EXPECT_FALSE(cli.version);
    EXPECT_FALSE(cli.help);
    EXPECT_FALSE(cli.probe);

    const command_line bare = parse({});
    EXPECT_FALSE(bare.config_file);
    EXPECT_FALSE(bare.check_config);
    EXPECT_TRUE(parse({"--version"}).version);
    EXPECT_TRUE(parse({"--help"}).help);
    EXPECT_EQ(parse({"--config=other.json"}).config_file, "other.json");
}

TEST(ParseCommandLine, RejectsBadUsage) {
    const std::vector<std::vector<const char*>> cases = {
        {"--bogus"},
        {"--conf", "x.json"},
        {"broker.json"},
        {"--config"},
        {"--config", ""},
        {"--config", "a", "--config", "b"},
        {"--check-config=yes"},
        {"-c", "x.json"},
    };
    for (const auto& args : cases) {
        SCOPED_TRACE(args.empty() ? "" : args.front());
        EXPECT_THROW(parse(args), command_line_error);
    }
}

TEST(ParseCommandLine, ParsesTheProbeUrl) {
    auto probe = parse({"--probe", "http://127.0.0.1:8080/healthz"}).probe;
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->host, "127.0.0.1");
    EXPECT_EQ(probe->port, 8080);
    EXPECT_EQ(probe->target, "/healthz");

    probe = parse({"--probe", "http://[::1]:9000"}).probe;
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->host, "::1");
    EXPECT_EQ(probe->port, 9000);
    EXPECT_EQ(probe->target, "/");

    probe = parse({"--probe", "http://localhost/readyz?verbose=1"}).probe;
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->host, "localhost");
    EXPECT_EQ(probe->port, 80);
    EXPECT_EQ(probe->target, "/readyz?verbose=1");
}

TEST(ParseCommandLine, RejectsABadProbeUrl) {
    for (const char* url : {"https://127.0.0.1:8443/healthz", "127.0.0.1:8080/healthz", "http:///healthz",
                            "http://user@127.0.0.1/", "http://127.0.0.1:0/", "http://127.0.0.1:99999/",
                            "http://127.0.0.1/#x", "not a url"}) {
        SCOPED_TRACE(url);
        try {
            parse({"--probe", url});
            ADD_FAILURE() << "accepted";
        } catch (const command_line_error& e) {
            EXPECT_THAT(e.what(), StartsWith("--probe: "));
        }
    }
}

TEST(UsageText, ListsEveryOption) {
    const std::string usage = usage_text();
    for (const char* option : {"--config FILE", "--check-config", "--version", "--help", "--probe URL"})
        EXPECT_THAT(usage, HasSubstr(option));
    EXPECT_EQ(usage.back(), '\n');
}

// --- the binary ----------------------------------------------------------------------------------------

struct process_result {
    int status = -1; // the exit status; -1 when killed by a signal
    std::string out;
    std::string err;
};

// Runs the broker in a fresh directory for each test. The child's environment is this process's
// without any ZOOM_* or TOKEN_BROKER_* variable, plus `env`: the tests do not depend on the shell
// they run from, and never change their own environment.
class BinaryTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::random_device random;
        dir_ = fs::temp_directory_path() /
               ("token-broker-cli-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    const fs::path& dir() const { return dir_; }

    fs::path write(const fs::path& name, std::string_view content) {
        const fs::path path = dir_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << content;
        return path;
    }

    process_result run(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {}) {
        std::vector<std::string> arg_strings{TOKEN_BROKER_BINARY};
        arg_strings.insert(arg_strings.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& arg : arg_strings)
            argv.push_back(arg.data());
        argv.push_back(nullptr);

        std::vector<std::string> env_strings;
        for (char** entry = environ; *entry; ++entry) {
            const std::string_view var(*entry);
            if (!var.starts_with("ZOOM_") && !var.starts_with("TOKEN_BROKER_"))
                env_strings.emplace_back(var);
        }
        for (const auto& [name, value] : env)
            env_strings.push_back(name + "=" + value);
        std::vector<char*> envp;
        for (std::string& var : env_strings)
            envp.push_back(var.data());
        envp.push_back(nullptr);

        // Output goes to files rather than pipes: nothing to drain while waiting for the child.
        const fs::path out = dir_ / "stdout.txt";
        const fs::path err = dir_ / "stderr.txt";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        pid_t pid = 0;
        const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        process_result result;
        if (spawned != 0) {
            ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(spawned);
            return result;
        }
        int wait_status = 0;
        while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(wait_status))
            result.status = WEXITSTATUS(wait_status);
        result.out = testing::read_file(out);
        result.err = testing::read_file(err);
        return result;
    }

private:
    fs::path dir_;
};

constexpr std::string_view good_config = R"({"zoom": {"access_token": "t"}})";

// A CA certificate in PEM, made once.
const std::string& a_ca_certificate() {
    static const zoom_sim::test_ca ca("cli test CA");
    return ca.cert_pem();
}

TEST_F(BinaryTest, Version) {
    const process_result r = run({"--version"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "token-broker " TOKEN_BROKER_VERSION "\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(BinaryTest, Help) {
    const process_result r = run({"--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, usage_text());
    EXPECT_EQ(r.err, "");
}

TEST_F(BinaryTest, BadUsageExits2WithTheUsage) {
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"--bogus"}, {"--config"}, {"stray-argument"}, {"--probe", "ftp://127.0.0.1/"}}) {
        SCOPED_TRACE(args.front());
        const process_result r = run(args);
        EXPECT_EQ(r.status, 2);
        EXPECT_THAT(r.err, StartsWith("token-broker: "));
        EXPECT_THAT(r.err, HasSubstr(usage_text()));
        EXPECT_EQ(r.out, "");
    }
    EXPECT_THAT(run({"--bogus"}).err, StartsWith("token-broker: unrecognised option '--bogus'\n"));
}

TEST_F(BinaryTest, ConfigIsRequired) {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{}, {"--check-config"}}) {
        const process_result r = run(args);
        EXPECT_EQ(r.status, 2);
        EXPECT_EQ(r.err, "config: --config: required\n");
        EXPECT_EQ(r.out, "");
    }
}

// --- --probe -------------------------------------------------------------------------------------------

// An HTTP server on a loopback port of its own, on a background thread. The n-th connection gets
// answers[n] written back after its request headers arrive, then is closed ("" closes it without
// answering); connections beyond the answers are read and held open, never answered.
class canned_http_server {
public:
    explicit canned_http_server(std::vector<std::string> answers)
        : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}), answers_(std::move(answers)) {
        net::co_spawn(ioc_, serve(), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~canned_http_server() {
        ioc_.stop();
        thread_.join();
    }

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    // The request headers received so far, one string per connection.
    std::vector<std::string> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    net::awaitable<void> serve() {
        constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
        for (std::size_t n = 0;; ++n) {
            auto [accept_ec, socket] = co_await acceptor_.async_accept(use_tuple);
            if (accept_ec)
                co_return;
            std::string request;
            auto [read_ec, read] =
                co_await net::async_read_until(socket, net::dynamic_buffer(request), "\r\n\r\n", use_tuple);
            if (read_ec)
                continue;
            request.resize(read);
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(request);
            }
            if (n >= answers_.size()) {
                held_.push_back(std::move(socket));
                continue;
            }
            co_await net::async_write(socket, net::buffer(answers_[n]), use_tuple);
            beast::error_code ignored;
            socket.shutdown(net::ip::tcp::socket::shutdown_both, ignored);
        }
    }

    net::io_context ioc_;
    net::ip::tcp::acceptor acceptor_;
    const std::vector<std::string> answers_;
    std::vector<net::ip::tcp::socket> held_; // only touched on the server thread
    mutable std::mutex mutex_;
    std::vector<std::string> requests_;
    std::thread thread_;
};

std::string http_answer(std::string_view status_line, std::string_view body) {
    return std::string(status_line) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + std::string(body);
}

TEST_F(BinaryTest, ProbeExits0OnlyWhenTheAnswerIs200) {
    canned_http_server server({http_answer("HTTP/1.1 200 OK", R"({"status":"ok"})"),
                               http_answer("HTTP/1.1 503 Service Unavailable", R"({"error":{}})"), ""});
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/healthz";

    process_result r = run({"--probe", url});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, "");

    r = run({"--probe", url});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "token-broker: probe: GET " + url + ": answered 503 Service Unavailable\n");
    EXPECT_EQ(r.out, "");

    r = run({"--probe", url});
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.err, StartsWith("token-broker: probe: GET " + url + ": no valid answer: "));
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line";

    const std::vector<std::string> requests = server.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_THAT(requests[0], StartsWith("GET /healthz HTTP/1.1\r\n"));
    EXPECT_THAT(requests[0], HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
}

TEST_F(BinaryTest, ProbeOfAClosedPortExits1) {
    // Bound but not listening: connections are refused, and no other process can take the port.
    net::io_context ioc;
    net::ip::tcp::socket closed(ioc);
    closed.open(net::ip::tcp::v4());
    closed.bind({net::ip::make_address("127.0.0.1"), 0});
    const std::string url = "http://127.0.0.1:" + std::to_string(closed.local_endpoint().port()) + "/readyz";

    const process_result r = run({"--probe", url});
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.err, StartsWith("token-broker: probe: GET " + url + ": cannot connect: "));
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line";
}

TEST_F(BinaryTest, ProbeGivesUpAfterTwoSeconds) {
    canned_http_server silent({});
    const std::string url = "http://127.0.0.1:" + std::to_string(silent.port()) + "/healthz";
    const auto start = std::chrono::steady_clock::now();
    const process_result r = run({"--probe", url});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err,
              "token-broker: probe: GET " + url + ": no answer within 2000 ms (waiting for the answer)\n");
    EXPECT_GE(elapsed, std::chrono::milliseconds(1900));
    EXPECT_LT(elapsed, std::chrono::seconds(10));
    EXPECT_EQ(silent.requests().size(), 1u);
}

TEST_F(BinaryTest, CheckConfigAcceptsAGoodFile) {
    const std::string file = write("good.json", good_config).string();
    const process_result r = run({"--check-config", "--config", file});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "config OK: " + file + "\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(BinaryTest, CheckConfigNamesTheBadKey) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"zoom": {"access_token": "t"}, "server": {"port": 0}})",
         "config: server.port: must be an integer from 1 to 65535\n"},
        {R"({"zoom": {"access_token": "t"}, "server": {"prot": 8080}})",
         "config: server.prot: unknown key\n"},
        {R"({"zoom": {"access_token": "t", "request_timeout_ms": "10"}})",
         "config: zoom.request_timeout_ms: must be a positive integer\n"},
        {R"({"zoom": {"access_token": "t"}, "redis": {"max_reply_bytes": 1024}})",
         "config: redis.max_reply_bytes: must be an integer from 65536 to 1073741824\n"},
        {R"({"zoom": {}})", "config: zoom: no credentials: set zoom.account_id, zoom.client_id and "
                            "zoom.client_secret, or zoom.access_token\n"},
        {R"({"zoom": {"access_token": "t"}, "server": {"address": "0.0.0.0"}})", "config: auth.keys: "},
        {R"({"zoom": {"access_token": "t"}, "log": {"level": "loud"}})", "config: log.level: "},
        {R"({"zoom": {"access_token": "t"},)",
         "config: " + (dir() / "bad.json").string() + ": invalid JSON: "},
    };
    for (const auto& [text, message] : cases) {
        SCOPED_TRACE(text);
        const std::string file = write("bad.json", text).string();
        const process_result r = run({"--check-config", "--config", file});
        EXPECT_EQ(r.status, 2);
        EXPECT_THAT(r.err, StartsWith(message));
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line";
        EXPECT_EQ(r.out, "");
    }
}

TEST_F(BinaryTest, EnvironmentOverridesReachTheCheck) {
    const std::string file = write("good.json", good_config).string();
    process_result r = run({"--check-config", "--config", file}, {{"TOKEN_BROKER_PORT", "70000"}});
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.err, "config: TOKEN_BROKER_PORT: must be an integer from 1 to 65535\n");
    r = run({"--check-config", "--config", file}, {{"TOKEN_BROKER_PORT", "9090"}});
    EXPECT_EQ(r.status, 0);

    const std::string empty = write("empty.json", "{}").string();
    r = run({"--check-config", "--config", empty});
    EXPECT_EQ(r.status, 2);
    r = run({"--check-config", "--config", empty},
            {{"ZOOM_ACCESS_TOKEN_FILE", write("token", "t\n").string()}});
    EXPECT_EQ(r.status, 0) << r.err;
    r = run({"--check-config", "--config", empty}, {{"ZOOM_ACCESS_TOKEN_FILE", (dir() / "nope").string()}});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: ZOOM_ACCESS_TOKEN_FILE: cannot read "));
}

TEST_F(BinaryTest, MissingFiles) {
    const std::string missing = (dir() / "missing.json").string();
    process_result r = run({"--check-config", "--config", missing});
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.err, "config: " + missing + ": cannot read: No such file or directory\n");
    // Without --check-config too: the configuration is loaded before anything starts.
    r = run({"--config", missing});
    EXPECT_EQ(r.status, 2);

    const std::string file =
        write("ca.json", R"({"zoom": {"access_token": "t", "ca_file": "no-ca.pem"}})").string();
    r = run({"--check-config", "--config", file});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom.ca_file: cannot read "));
}

// --check-config loads every file as starting would: it never says "config OK" for a configuration
// that cannot start.
TEST_F(BinaryTest, CheckConfigFindsWhatStartingWouldFind) {
    const zoom_sim::test_ca ca("cli test CA");
    const zoom_sim::pem_pair server = ca.issue("localhost", {"localhost"}, {});
    const zoom_sim::pem_pair other = ca.issue("other", {"other"}, {});
    write("cert.pem", server.cert);
    write("other-key.pem", other.key);
    write("garbage.pem", "not a certificate");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "cert.pem", "key_file": "other-key.pem"}}})",
         "config: server.tls.key_file: is not the private key of the certificate in "},
        {R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "garbage.pem", "key_file": "other-key.pem"}}})",
         "config: server.tls.cert_file: cannot be used: "},
        {R"({"zoom": {"access_token": "t", "ca_file": "garbage.pem"}})",
         "config: zoom.ca_file: is not a PEM bundle of CA certificates: "},
    };
    for (const auto& [text, message] : cases) {
        SCOPED_TRACE(text);
        const std::string file = write("config.json", text).string();
        const process_result r = run({"--check-config", "--config", file});
        EXPECT_EQ(r.status, 2);
        EXPECT_THAT(r.err, StartsWith(message));
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
        EXPECT_EQ(r.out, "");
    }
}

// Neither --check-config nor the log of a start says the Redis password or an encryption key,
// whether the configuration is good or not.
TEST_F(BinaryTest, RedisSecretsNeverReachTheOutput) {
    const std::string password = "Wj4Rt7Yp2Mb";
    const std::string key = "5e" + std::string(62, 'a');
    const std::string previous = "6f" + std::string(62, 'b');
    const std::string key_file = write("key", key + "\n").string();
    auto expect_no_secret = [&](const process_result& r) {
        for (const std::string& text : {r.out, r.err})
            for (const std::string& secret :
                 {password, key, previous, key.substr(0, 16), previous.substr(0, 16)})
                EXPECT_THAT(text, Not(HasSubstr(secret)));
    };

    const std::string good =
        write("good.json", R"({"zoom": {"access_token": "t"}, "redis": {"url": "redis://cache:6379/1",
            "password": ")" + password +
                               R"(", "previous_encryption_key": ")" + previous + R"("}})")
            .string();
    const std::map<std::string, std::string> env = {{"TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE", key_file}};
    process_result r = run({"--check-config", "--config", good}, env);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "config OK: " + good + "\n");
    expect_no_secret(r);

    // Started, logging everything, until a port that is taken stops it.
    net::io_context ioc;
    net::ip::tcp::acceptor taken(ioc, {net::ip::make_address("127.0.0.1"), 0});
    auto loud = env;
    loud["TOKEN_BROKER_LOG_LEVEL"] = "trace";
    loud["TOKEN_BROKER_PORT"] = std::to_string(taken.local_endpoint().port());
    r = run({"--config", good}, loud);
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.out, HasSubstr("cannot listen on"));
    expect_no_secret(r);

    const std::vector<std::pair<std::string, std::map<std::string, std::string>>> bad = {
        {R"({"zoom": {"access_token": "t"}, "redis": {"url": "redis://user:)" + password + R"(@cache"}})",
         {}},
        {R"({"zoom": {"access_token": "t"}, "redis": {"url": "redis://cache", "encryption_key": ")" + key +
             R"(0"}})",
         {}},
        {R"({"zoom": {"access_token": "t"}})",
         {{"TOKEN_BROKER_REDIS_URL", "rediss://:" + password + "@cache"}}},
        {R"({"zoom": {"access_token": "t"}})",
         {{"TOKEN_BROKER_REDIS_URL", "redis://cache"},
          {"TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY", previous + "x"}}},
    };
    for (const auto& [text, variables] : bad) {
        SCOPED_TRACE(text);
        const std::string file = write("bad.json", text).string();
        r = run({"--check-config", "--config", file}, variables);
        EXPECT_EQ(r.status, 2);
        EXPECT_THAT(r.err, StartsWith("config: "));
        expect_no_secret(r);
    }
}

TEST_F(BinaryTest, ProductionExample) {
    const std::string example = fs::path(SOURCE_DIR) / "config/token-broker.json";
    process_result r = run({"--check-config", "--config", example}, {{"ZOOM_ACCESS_TOKEN", "x"}});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "config OK: " + example + "\n");
    r = run({"--check-config", "--config", example});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom: no credentials"));
}

TEST_F(BinaryTest, DevConfigWithTheSimulatorsCa) {
    // Laid out as in the source tree, where config/dev.json names ../build/zoom-sim/ca.pem.
    const std::string dev =
        write("config/dev.json", testing::read_file(fs::path(SOURCE_DIR) / "config/dev.json")).string();
    process_result r = run({"--check-config", "--config", dev});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom.ca_file: cannot read "));
    write("build/zoom-sim/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    r = run({"--check-config", "--config", dev});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom.ca_file: is not a PEM bundle of CA certificates: "));
    write("build/zoom-sim/ca.pem", a_ca_certificate());
    r = run({"--check-config", "--config", dev});
    EXPECT_EQ(r.status, 0) << r.err;
}

// CONTRACT.md section 1: stderr always gets the one line that explains an exit, whatever log.level
// says: "off" silences the log, not the reason the broker did not start.
TEST_F(BinaryTest, StartFailuresExplainThemselvesOnStderrWhateverTheLogLevel) {
    net::io_context ioc;
    net::ip::tcp::acceptor taken(ioc, {net::ip::make_address("127.0.0.1"), 0});
    const std::string port = std::to_string(taken.local_endpoint().port());
    const std::map<std::string, std::string> quiet = {{"TOKEN_BROKER_LOG_LEVEL", "off"}};

    const std::string busy =
        write("busy.json", R"({"zoom": {"access_token": "t"}, "server": {"port": )" + port + "}}").string();
    process_result r = run({"--config", busy}, quiet);
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.err, StartsWith("token-broker: cannot listen on 127.0.0.1:" + port + ": "));
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_EQ(r.out, "");

    write("garbage.pem", "not a certificate");
    write("key.pem", "not a key either");
    const std::string bad_tls =
        write("tls.json", R"({"zoom": {"access_token": "t"}, "server": {"port": )" + port +
                              R"(, "tls": {"cert_file": "garbage.pem",
                                                      "key_file": "key.pem"}}})")
            .string();
    for (const auto& env : {quiet, std::map<std::string, std::string>{}}) {
        r = run({"--config", bad_tls}, env);
        EXPECT_EQ(r.status, 2);
        EXPECT_THAT(r.err, StartsWith("config: server.tls.cert_file: "));
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    }
}

// --- docker/: the Compose stack's configuration -----------------------------------------------------

// docker/compose-config.json with the simulator's CA path (a file on the shared volume in the stack)
// replaced by a file in the test's directory.
std::string compose_config_here(const fs::path& ca) {
    std::string text = testing::read_file(fs::path(SOURCE_DIR) / "docker/compose-config.json");
    const std::string ca_in_container = "/var/lib/zoom-sim/ca.pem";
    const auto at = text.find('"' + ca_in_container + '"');
    if (at == std::string::npos)
        ADD_FAILURE() << "docker/compose-config.json does not name " << ca_in_container;
    else
        text.replace(at + 1, ca_in_container.size(), ca.string());
    return text;
}

// The *_FILE variables docker/compose.yaml sets, pointing at the secrets it mounts.
std::map<std::string, std::string> compose_secrets() {
    const fs::path secrets = fs::path(SOURCE_DIR) / "docker/secrets";
    return {{"ZOOM_ACCOUNT_ID_FILE", (secrets / "zoom_account_id").string()},
            {"ZOOM_CLIENT_ID_FILE", (secrets / "zoom_client_id").string()},
            {"ZOOM_CLIENT_SECRET_FILE", (secrets / "zoom_client_secret").string()}};
}

TEST_F(BinaryTest, ComposeConfigPassesTheCheckWithTheSecrets) {
    const fs::path ca = write("ca.pem", a_ca_certificate());
    const std::string file = write("compose-config.json", compose_config_here(ca)).string();

    auto env = compose_secrets();
    env["TOKEN_BROKER_ADDRESS"] = "0.0.0.0"; // as the image sets it
    process_result r = run({"--check-config", "--config", file}, env);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "config OK: " + file + "\n");

    // The credentials come from the secrets alone, and the CA file must exist.
    r = run({"--check-config", "--config", file});
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom: no credentials"));
    fs::remove(ca);
    r = run({"--check-config", "--config", file}, env);
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, StartsWith("config: zoom.ca_file: cannot read "));
}

TEST_F(BinaryTest, ComposeConfigHoldsTheDocumentedDevCallerKey) {
    const fs::path ca = write("ca.pem", a_ca_certificate());
    const std::string file = write("compose-config.json", compose_config_here(ca)).string();
    const auto env = compose_secrets();
    const config cfg = load_config(file, [&env](std::string_view name) -> std::optional<std::string> {
        const auto it = env.find(std::string(name));
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    EXPECT_EQ(cfg.zoom.api_base_url, "https://zoom-sim:8443/v2");
    EXPECT_EQ(cfg.zoom.oauth_token_url, "https://zoom-sim:8443/oauth/token");
    EXPECT_EQ(cfg.server.address, "0.0.0.0");
    EXPECT_LT(cfg.server.drain_timeout, std::chrono::seconds(15)) << "compose.yaml's stop_grace_period";

    // The plain key that docker/compose.yaml and README.md give is the one configured.
    const std::string dev_key = "dev-caller-key-change-me";
    const authenticator callers(cfg.auth.keys);
    EXPECT_NE(callers.identify(dev_key), nullptr);
    EXPECT_EQ(callers.identify("dev-caller-key-change-me-not"), nullptr);
    EXPECT_THAT(testing::read_file(fs::path(SOURCE_DIR) / "docker/compose.yaml"),
                HasSubstr("Bearer " + dev_key));
}

} // namespace
} // namespace token_broker
