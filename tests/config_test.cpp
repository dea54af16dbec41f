#include "config/config.hpp"
#include "test_certs.hpp"
#include "test_support.hpp"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <tuple>
#include <unistd.h>

namespace token_broker {
namespace {

// What redis.url must be, as every refusal of its form says.
const std::string redis_url_form =
    "must be a redis:// or rediss:// URL with a host, an optional port and an optional /db number, a "
    "redis+sentinel:// or rediss+sentinel:// URL with sentinels and a master name, or a redis+cluster:// or "
    "rediss+cluster:// URL with some of the cluster's nodes";

namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

using env_map = std::map<std::string, std::string>;

env_lookup lookup_in(env_map env) {
    return [env = std::move(env)](std::string_view name) -> std::optional<std::string> {
        const auto it = env.find(std::string(name));
        if (it == env.end())
            return std::nullopt;
        return it->second;
    };
}

// sha256("abc"), and another valid digest.
constexpr std::string_view sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr std::string_view sha_other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// Changes the current directory for the lifetime of the object.
class current_directory {
public:
    explicit current_directory(const fs::path& dir) : saved_(fs::current_path()) { fs::current_path(dir); }
    ~current_directory() { fs::current_path(saved_); }

private:
    fs::path saved_;
};

// Every test gets a fresh directory for its files, removed afterwards.
class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::random_device random;
        dir_ = fs::temp_directory_path() /
               ("token-broker-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
        fs::create_directories(dir_);
        dir_ = fs::canonical(dir_);
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

    // Writes a usable server certificate, its key and the CA that issued it under the given names.
    void write_tls_files(const fs::path& cert, const fs::path& key, const fs::path& ca) {
        write(cert, server_identity().cert);
        write(key, server_identity().key);
        write(ca, test_ca().cert_pem());
    }

    static const zoom_sim::test_ca& test_ca() {
        static const zoom_sim::test_ca ca("config test CA");
        return ca;
    }
    static const zoom_sim::pem_pair& server_identity() {
        static const zoom_sim::pem_pair pair = test_ca().issue("localhost", {"localhost"}, {});
        return pair;
    }

    config load(std::string_view json_text, env_map env = {}) {
        return load_config(write("config.json", json_text), lookup_in(std::move(env)));
    }

    // The error loading `json_text` gives; a test failure when it loads.
    config_error load_error(std::string_view json_text, env_map env = {}) {
        try {
            load(json_text, std::move(env));
        } catch (const config_error& e) {
            EXPECT_EQ(std::string(e.what()), "config: " + e.key() + ": " + e.reason());
            return e;
        }
        ADD_FAILURE() << "loaded without an error: " << json_text;
        return config_error("(none)", "(none)");
    }

private:
    fs::path dir_;
};

constexpr std::string_view with_token = R"({"zoom": {"access_token": "test-token"}})";

TEST_F(ConfigTest, DefaultsWhenOnlyCredentialsAreGiven) {
    const config cfg = load(with_token);
    EXPECT_EQ(cfg.server.address, "127.0.0.1");
    EXPECT_EQ(cfg.server.port, 8080);
    EXPECT_EQ(cfg.server.threads, 1u);
    EXPECT_EQ(cfg.server.header_timeout, milliseconds(10000));
    EXPECT_EQ(cfg.server.idle_timeout, milliseconds(60000));
    EXPECT_EQ(cfg.server.drain_timeout, milliseconds(10000));
    EXPECT_EQ(cfg.server.max_header_bytes, 8192u);
    EXPECT_EQ(cfg.server.max_connections, 10000u);
    EXPECT_FALSE(cfg.server.tls.enabled());
    EXPECT_EQ(cfg.server.tls.key_file, "");
    EXPECT_EQ(cfg.server.tls.client_ca_file, "");
    EXPECT_EQ(cfg.zoom.api_base_url, "https://api.zoom.us/v2");
    EXPECT_EQ(cfg.zoom.oauth_token_url, "https://zoom.us/oauth/token");
    EXPECT_EQ(cfg.zoom.access_token, "test-token");
    EXPECT_FALSE(cfg.zoom.uses_oauth());
    EXPECT_EQ(cfg.zoom.account_id, "");
    EXPECT_EQ(cfg.zoom.client_id, "");
    EXPECT_EQ(cfg.zoom.client_secret, "");
    EXPECT_EQ(cfg.zoom.ca_file, "");
    EXPECT_EQ(cfg.zoom.connect_timeout, milliseconds(3000));
    EXPECT_EQ(cfg.zoom.request_timeout, milliseconds(10000));
    EXPECT_EQ(cfg.zoom.max_connections, 16u);
    EXPECT_EQ(cfg.zoom.max_retries, 2u);
    EXPECT_EQ(cfg.zoom.requests_per_second, 20.0);
    EXPECT_EQ(cfg.cache.max_entries, 100000u);
    EXPECT_EQ(cfg.cache.refresh_margin, seconds(300));
    EXPECT_EQ(cfg.cache.negative_ttl, seconds(30));
    EXPECT_TRUE(cfg.auth.keys.empty());
    EXPECT_EQ(cfg.auth.keys_file, "");
    EXPECT_FALSE(cfg.auth.allow_unauthenticated);
    EXPECT_EQ(cfg.log.level, spdlog::level::info);
    EXPECT_EQ(cfg.log.format, log_format::text);
}

TEST_F(ConfigTest, ReadsEveryKey) {
    write_tls_files("cert.pem", "key.pem", "clients.pem");
    write("zoom-ca.pem", test_ca().cert_pem());
    write("keys.json",
          R"([{"name": "from-file", "sha256": ")" + std::string(sha_other) + R"(", "users": []}])");
    const config cfg = load(R"({
      "server": {
        "address": "::", "port": 9443, "threads": 4,
        "header_timeout_ms": 5000, "idle_timeout_ms": 30000, "drain_timeout_ms": 0,
        "max_header_bytes": 16384, "max_connections": 500,
        "tls": {"cert_file": "cert.pem", "key_file": "key.pem", "client_ca_file": "clients.pem"}
      },
      "zoom": {
        "api_base_url": "https://zoom.example.com:8443/api/v2", "oauth_token_url": "https://zoom.example.com/oauth/token",
        "account_id": "acct", "client_id": "client", "client_secret": "s3cret", "access_token": "",
        "ca_file": "zoom-ca.pem", "connect_timeout_ms": 1000, "request_timeout_ms": 2000,
        "max_connections": 4, "max_retries": 0, "requests_per_second": 2.5
      },
      "cache": {"max_entries": 10, "refresh_margin_s": 0, "negative_ttl_s": 0},
      "auth": {
        "keys": [{"name": "launcher", "sha256": "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                  "users": ["*@example.com", "team-*"]}],
        "keys_file": "keys.json", "allow_unauthenticated": true
      },
      "log": {"level": "debug", "format": "json"}
    })");
    EXPECT_EQ(cfg.server.address, "::");
    EXPECT_EQ(cfg.server.port, 9443);
    EXPECT_EQ(cfg.server.threads, 4u);
    EXPECT_EQ(cfg.server.header_timeout, milliseconds(5000));
    EXPECT_EQ(cfg.server.idle_timeout, milliseconds(30000));
    EXPECT_EQ(cfg.server.drain_timeout, milliseconds(0));
    EXPECT_EQ(cfg.server.max_header_bytes, 16384u);
    EXPECT_EQ(cfg.server.max_connections, 500u);
    EXPECT_TRUE(cfg.server.tls.enabled());
    EXPECT_EQ(cfg.server.tls.cert_file, (dir() / "cert.pem").string());
    EXPECT_EQ(cfg.server.tls.key_file, (dir() / "key.pem").string());
    EXPECT_EQ(cfg.server.tls.client_ca_file, (dir() / "clients.pem").string());
    EXPECT_EQ(cfg.zoom.api_base_url, "https://zoom.example.com:8443/api/v2");
    EXPECT_EQ(cfg.zoom.oauth_token_url, "https://zoom.example.com/oauth/token");
    EXPECT_TRUE(cfg.zoom.uses_oauth());
    EXPECT_EQ(cfg.zoom.account_id, "acct");
    EXPECT_EQ(cfg.zoom.client_id, "client");
    EXPECT_EQ(cfg.zoom.client_secret, "s3cret");
    EXPECT_EQ(cfg.zoom.ca_file, (dir() / "zoom-ca.pem").string());
    EXPECT_EQ(cfg.zoom.connect_timeout, milliseconds(1000));
    EXPECT_EQ(cfg.zoom.request_timeout, milliseconds(2000));
    EXPECT_EQ(cfg.zoom.max_connections, 4u);
    EXPECT_EQ(cfg.zoom.max_retries, 0u);
    EXPECT_EQ(cfg.zoom.requests_per_second, 2.5);
    EXPECT_EQ(cfg.cache.max_entries, 10u);
    EXPECT_EQ(cfg.cache.refresh_margin, seconds(0));
    EXPECT_EQ(cfg.cache.negative_ttl, seconds(0));
    ASSERT_EQ(cfg.auth.keys.size(), 2u);
    EXPECT_EQ(cfg.auth.keys[0].name, "launcher");
    EXPECT_EQ(cfg.auth.keys[0].sha256[0], 0xba);
    EXPECT_EQ(cfg.auth.keys[0].sha256[31], 0xad);
    EXPECT_EQ(cfg.auth.keys[0].users, (std::vector<std::string>{"*@example.com", "team-*"}));
    EXPECT_EQ(cfg.auth.keys[1].name, "from-file");
    EXPECT_TRUE(cfg.auth.keys[1].users.empty());
    EXPECT_EQ(cfg.auth.keys_file, (dir() / "keys.json").string());
    EXPECT_TRUE(cfg.auth.allow_unauthenticated);
    EXPECT_EQ(cfg.log.level, spdlog::level::debug);
    EXPECT_EQ(cfg.log.format, log_format::json);
}

// One bad value: `value` (JSON) set at the dotted key `set`, on top of a valid configuration.
struct bad_value {
    std::string set;
    std::string value;
    std::string reason;
    std::string key = {}; // the key the error names, when not `set`
};

void set_at(json::object& root, std::string_view dotted, json::value value) {
    json::object* object = &root;
    for (auto dot = dotted.find('.'); dot != std::string_view::npos; dot = dotted.find('.')) {
        json::value& child = (*object)[dotted.substr(0, dot)];
        if (!child.is_object())
            child = json::object();
        object = &child.as_object();
        dotted.remove_prefix(dot + 1);
    }
    (*object)[dotted] = std::move(value);
}

TEST_F(ConfigTest, RejectsEveryBadValueNamingItsKey) {
    const std::string port = "must be an integer from 1 to 65535";
    const std::string positive = "must be a positive integer";
    const std::string day = "must be at most 86400000 (one day)";
    const std::string address = "must be an IP address (such as 127.0.0.1, 0.0.0.0 or ::) or localhost";
    const std::string https = "must be an https:// URL with a host";
    const std::string level = "must be one of trace, debug, info, warn, error, critical, off";
    const std::string key_hex = "must be 64 hexadecimal digits: the SHA-256 of the key";
    const std::vector<bad_value> cases = {
        {"server", "3", "must be an object"},
        {"server.address", "42", "must be a string"},
        {"server.address", R"("")", address},
        {"server.address", R"("example.com")", address},
        {"server.address", R"("127.0.0.256")", address},
        {"server.port", "0", port},
        {"server.port", "65536", port},
        {"server.port", "-1", port},
        {"server.port", R"("8080")", port},
        {"server.port", "80.5", port},
        {"server.port", "8e3", port},
        {"server.port", "true", port},
        {"server.port", "null", port},
        {"server.port", "18446744073709551615", port},
        {"server.threads", "0", "must be an integer from 1 to 64"},
        {"server.threads", "65", "must be an integer from 1 to 64"},
        {"server.header_timeout_ms", "0", positive},
        {"server.header_timeout_ms", "-5", positive},
        {"server.header_timeout_ms", R"("10s")", positive},
        {"server.header_timeout_ms", "86400001", day},
        {"server.idle_timeout_ms", "0", positive},
        {"server.drain_timeout_ms", "-1", "must be a non-negative integer"},
        {"server.drain_timeout_ms", "99999999999", day},
        {"server.max_header_bytes", "100", "must be an integer from 1024 to 1048576"},
        {"server.max_header_bytes", "2000000", "must be an integer from 1024 to 1048576"},
        {"server.max_connections", "0", positive},
        {"server.max_connections", "1000001", "must be at most 1000000"},
        {"server.tls", R"("on")", "must be an object"},
        {"server.tls.cert_file", "1", "must be a string"},
        {"server.tls.key_file", "[]", "must be a string"},
        {"server.tls.client_ca_file", "false", "must be a string"},
        {"zoom", "[]", "must be an object"},
        {"zoom.api_base_url", R"("http://api.zoom.us/v2")", https},
        {"zoom.api_base_url", R"("api.zoom.us/v2")", https},
        {"zoom.api_base_url", R"("https:///v2")", https},
        {"zoom.api_base_url", R"("not a url")", https},
        {"zoom.api_base_url", "5", "must be a string"},
        {"zoom.api_base_url", R"("https://user:pw@api.zoom.us/v2")", "must not hold a user name or password"},
        {"zoom.api_base_url", R"("https://api.zoom.us/v2?x=1")", "must not have a query or a fragment"},
        {"zoom.api_base_url", R"("https://api.zoom.us/v2#top")", "must not have a query or a fragment"},
        {"zoom.api_base_url", R"("https://api.zoom.us:0/v2")", "must have a port from 1 to 65535, if any"},
        {"zoom.api_base_url", R"("https://api.zoom.us:70000/v2")",
         "must have a port from 1 to 65535, if any"},
        {"zoom.api_base_url", R"("https://api.zoom.us:99999/v2")",
         "must have a port from 1 to 65535, if any"},
        {"zoom.oauth_token_url", R"("http://zoom.us/oauth/token")", https},
        {"zoom.oauth_token_url", R"("ftp://zoom.us/oauth/token")", https},
        {"zoom.account_id", "5", "must be a string"},
        {"zoom.access_token", R"("two words")",
         "must hold only visible ASCII characters (no spaces or line breaks)"},
        {"zoom.access_token", R"("line\nbreak")",
         "must hold only visible ASCII characters (no spaces or line breaks)"},
        {"zoom.ca_file", "7", "must be a string"},
        {"zoom.connect_timeout_ms", "0", positive},
        {"zoom.request_timeout_ms", "0", positive},
        {"zoom.request_timeout_ms", "1.5", positive},
        {"zoom.max_connections", "0", "must be an integer from 1 to 1024"},
        {"zoom.max_connections", "1025", "must be an integer from 1 to 1024"},
        {"zoom.max_retries", "-1", "must be an integer from 0 to 10"},
        {"zoom.max_retries", "11", "must be an integer from 0 to 10"},
        {"zoom.requests_per_second", "0", "must be a positive number"},
        {"zoom.requests_per_second", "-0.5", "must be a positive number"},
        {"zoom.requests_per_second", R"("20")", "must be a positive number"},
        {"zoom.requests_per_second", "1e6", "must be at most 100000"},
        {"cache", "null", "must be an object"},
        {"cache.max_entries", "0", positive},
        {"cache.max_entries", "100000001", "must be at most 100000000"},
        {"cache.refresh_margin_s", "-1", "must be a non-negative integer"},
        {"cache.refresh_margin_s", "1.5", "must be a non-negative integer"},
        {"cache.negative_ttl_s", "-1", "must be a non-negative integer"},
        {"cache.negative_ttl_s", "31536001", "must be at most 31536000 (one year)"},
        {"auth", "true", "must be an object"},
        {"auth.allow_unauthenticated", R"("true")", "must be true or false"},
        {"auth.allow_unauthenticated", "1", "must be true or false"},
        {"auth.keys_file", "3", "must be a string"},
        {"auth.keys", "{}", "must be an array of keys"},
        {"auth.keys", "[1]", "must be an object", "auth.keys[0]"},
        {"auth.keys", R"([{"name": "a", "sha256": "ab", "users": []}])", key_hex, "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(63, 'a') + R"(", "users": []}])", key_hex,
         "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(65, 'a') + R"(", "users": []}])", key_hex,
         "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(63, 'a') + R"(g", "users": []}])",
         key_hex, "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "a", "sha256": 1, "users": []}])", "must be a string",
         "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "", "sha256": ")" + std::string(sha_abc) + R"(", "users": []}])",
         "must be a non-empty string", "auth.keys[0].name"},
        {"auth.keys", R"([{"name": 1, "sha256": ")" + std::string(sha_abc) + R"(", "users": []}])",
         "must be a string", "auth.keys[0].name"},
        {"auth.keys", R"([{"sha256": ")" + std::string(sha_abc) + R"(", "users": []}])", "is required",
         "auth.keys[0].name"},
        {"auth.keys", R"([{"name": "a", "users": []}])", "is required", "auth.keys[0].sha256"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(sha_abc) + R"("}])",
         R"(is required: [] for nobody, ["*"] for every user)", "auth.keys[0].users"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(sha_abc) + R"(", "users": "*"}])",
         "must be an array of user ids or patterns", "auth.keys[0].users"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(sha_abc) + R"(", "users": ["x", ""]}])",
         "must be a non-empty string", "auth.keys[0].users[1]"},
        {"auth.keys", R"([{"name": "a", "sha256": ")" + std::string(sha_abc) + R"(", "users": [3]}])",
         "must be a non-empty string", "auth.keys[0].users[0]"},
        {"log", "\"info\"", "must be an object"},
        {"log.level", R"("verbose")", level},
        {"log.level", R"("INFO")", level},
        {"log.level", R"("warning")", level},
        {"log.level", "3", "must be a string"},
        {"log.format", R"("xml")", "must be text or json"},
        {"log.format", "true", "must be a string"},
    };
    for (const bad_value& c : cases) {
        SCOPED_TRACE(c.set + " = " + c.value);
        json::object root = json::parse(with_token).as_object();
        set_at(root, c.set, json::parse(c.value));
        const config_error e = load_error(json::serialize(root));
        EXPECT_EQ(e.key(), c.key.empty() ? c.set : c.key);
        EXPECT_EQ(e.reason(), c.reason);
    }
}

// Values that no operator can mean (docs/CONTRACT.md section 8).
TEST_F(ConfigTest, ValuesThatCanNeverBeMeantAreErrors) {
    for (const char* rate : {"0.09", "1e-300", "5e-324"}) {
        SCOPED_TRACE(rate);
        const config_error e = load_error(R"({"zoom": {"access_token": "t", "requests_per_second": )" +
                                          std::string(rate) + "}}");
        EXPECT_EQ(e.key(), "zoom.requests_per_second");
        EXPECT_EQ(e.reason(), "must be at least 0.1 (one request every 10 s)");
    }
    EXPECT_EQ(load(R"({"zoom": {"access_token": "t", "requests_per_second": 0.1}})").zoom.requests_per_second,
              0.1);

    auto keys = [](std::string_view name, std::string_view users) {
        return R"({"zoom": {"access_token": "t"}, "auth": {"keys": [{"name": )" + std::string(name) +
               R"(, "sha256": ")" + std::string(sha_abc) + R"(", "users": )" + std::string(users) + "}]}}";
    };
    for (const char* name :
         {R"("a b")", R"("launcher\naudit key=forged")", R"("a\tb")", R"("a\rb")", R"("a\u0000b")",
          R"("a\u007fb")", R"("\u00e9quipe")", R"("a\u2028b")", R"(" a")"}) {
        SCOPED_TRACE(name);
        const config_error e = load_error(keys(name, R"(["*"])"));
        EXPECT_EQ(e.key(), "auth.keys[0].name");
        EXPECT_EQ(e.reason(), "must hold only visible ASCII characters (no spaces or control characters): it "
                              "is written into log lines");
    }
    for (const char* pattern : {R"(" *")", R"("team-\n*")", R"("*\t")", R"("a\u0001")", R"("*\u00a0")",
                                R"("j\u00f6rg@example.com")"}) {
        SCOPED_TRACE(pattern);
        const config_error e = load_error(keys(R"("k")", "[\"x\", " + std::string(pattern) + "]"));
        EXPECT_EQ(e.key(), "auth.keys[0].users[1]");
        EXPECT_EQ(e.reason(), "must hold only visible ASCII characters (no spaces or control characters): "
                              "no user id holds anything else");
    }
    // The same rules hold in a keys file.
    write("keys.json", R"([{"name": "a\nb", "sha256": ")" + std::string(sha_abc) + R"(", "users": []}])");
    const config_error e =
        load_error(R"({"zoom": {"access_token": "t"}, "auth": {"keys_file": "keys.json"}})");
    EXPECT_EQ(e.key(), "auth.keys_file");
    EXPECT_THAT(e.reason(), HasSubstr("keys.json[0].name: must hold only visible ASCII characters"));
    EXPECT_THAT(e.what(), Not(HasSubstr("\n")));
}

// RFC 8259 section 8.1 lets a parser ignore a UTF-8 byte-order mark; docs/CONTRACT.md section 8 says
// the broker does. A UTF-16 or UTF-32 one is named as the reason the file cannot be read.
TEST_F(ConfigTest, AUtf8ByteOrderMarkIsIgnoredAndOthersAreNamed) {
    const std::string bom = "\xEF\xBB\xBF";
    write("keys.json",
          bom + R"([{"name": "k", "sha256": ")" + std::string(sha_abc) + R"(", "users": ["*"]}])");
    const config cfg = load(bom + R"({"zoom": {"access_token": "t"}, "auth": {"keys_file": "keys.json"}})");
    EXPECT_EQ(cfg.zoom.access_token, "t");
    ASSERT_EQ(cfg.auth.keys.size(), 1u);
    EXPECT_EQ(cfg.auth.keys[0].name, "k");

    // Errors after the mark still give the line and column of the text.
    config_error e = load_error(bom + "{\n  \"zoom\": }");
    EXPECT_EQ(e.key(), (dir() / "config.json").string());
    EXPECT_THAT(e.reason(), StartsWith("invalid JSON: line 2, column 11: "));

    for (const std::string& mark :
         {std::string("\xFF\xFE"), std::string("\xFE\xFF"), std::string("\x00\x00\xFE\xFF", 4), bom + bom}) {
        e = load_error(mark + "{}");
        EXPECT_EQ(e.key(), (dir() / "config.json").string());
        if (mark != bom + bom) {
            EXPECT_EQ(e.reason(), "starts with a UTF-16 or UTF-32 byte-order mark: save it as UTF-8");
        }
    }
}

TEST_F(ConfigTest, ContractExampleMessage) {
    const config_error e = load_error(R"({"zoom": {"access_token": "t", "request_timeout_ms": -1}})");
    EXPECT_STREQ(e.what(), "config: zoom.request_timeout_ms: must be a positive integer");
}

TEST_F(ConfigTest, RejectsUnknownKeysAtEveryLevel) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"zoom": {"access_token": "t"}, "serve": {}})", "serve"},
        {R"({"zoom": {"access_token": "t"}, "server": {"prot": 8080}})", "server.prot"},
        {R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert": "x"}}})", "server.tls.cert"},
        {R"({"zoom": {"access_token": "t", "acount_id": "a"}})", "zoom.acount_id"},
        {R"({"zoom": {"access_token": "t"}, "cache": {"max": 1}})", "cache.max"},
        {R"({"zoom": {"access_token": "t"}, "auth": {"key": []}})", "auth.key"},
        {R"({"zoom": {"access_token": "t"}, "auth": {"keys": [{"nmae": "a"}]}})", "auth.keys[0].nmae"},
        {R"({"zoom": {"access_token": "t"}, "log": {"lvl": "info"}})", "log.lvl"},
        {R"({"zoom": {"access_token": "t"}, "log": {"Level": "info"}})", "log.Level"},
    };
    for (const auto& [text, key] : cases) {
        SCOPED_TRACE(text);
        const config_error e = load_error(text);
        EXPECT_EQ(e.key(), key);
        EXPECT_EQ(e.what(), "config: " + key + ": unknown key");
    }
}

TEST_F(ConfigTest, RejectsARepeatedKey) {
    config_error e = load_error(R"({"zoom": {"access_token": "t"}, "server": {"port": 1, "port": 2}})");
    EXPECT_EQ(e.key(), "server.port");
    EXPECT_EQ(e.reason(), "repeated key");
    e = load_error(R"({"zoom": {"access_token": "t"},
        "auth": {"keys": [{"name": "a"}, {"name": "b", "name": "c"}]}})");
    EXPECT_EQ(e.key(), "auth.keys[1].name");
}

TEST_F(ConfigTest, InvalidJsonNamesTheFileAndTheLine) {
    const fs::path file = dir() / "config.json";
    config_error e = load_error("{\n  \"server\": {\n    \"port\": 80,,\n  }\n}\n");
    EXPECT_EQ(e.key(), file.string());
    EXPECT_THAT(e.reason(), StartsWith("invalid JSON: line 3, column 16: "));
    e = load_error("");
    EXPECT_EQ(e.key(), file.string());
    EXPECT_THAT(e.reason(), StartsWith("invalid JSON: line 1, column 1: "));
    e = load_error("{\"zoom\": {\"access_token\": \"t\"}}\n{}");
    EXPECT_THAT(e.reason(), StartsWith("invalid JSON: line 2, column 1: "));
    e = load_error("{\"zoom\": {\"access_token\": \"t\"} // a comment\n}");
    EXPECT_THAT(e.reason(), StartsWith("invalid JSON: line 1, column 32: "));
    e = load_error(R"(["server"])");
    EXPECT_EQ(e.key(), file.string());
    EXPECT_EQ(e.reason(), "must hold a JSON object");
}

TEST_F(ConfigTest, MissingConfigFile) {
    const fs::path missing = dir() / "missing.json";
    try {
        load_config(missing, lookup_in({}));
        FAIL() << "loaded a missing file";
    } catch (const config_error& e) {
        EXPECT_EQ(e.key(), missing.string());
        EXPECT_EQ(e.reason(), "cannot read: No such file or directory");
    }
}

TEST_F(ConfigTest, NormalisesTheApiBaseUrl) {
    config cfg = load(R"({"zoom": {"access_token": "t", "api_base_url": "https://api.zoom.us/v2/",
                                   "oauth_token_url": "https://zoom.us/oauth/token/"}})");
    EXPECT_EQ(cfg.zoom.api_base_url, "https://api.zoom.us/v2");
    EXPECT_EQ(cfg.zoom.oauth_token_url, "https://zoom.us/oauth/token/");
    cfg = load(R"({"zoom": {"access_token": "t", "api_base_url": "https://[::1]:8443//"}})");
    EXPECT_EQ(cfg.zoom.api_base_url, "https://[::1]:8443");
}

// --- credentials ---------------------------------------------------------------------------------

TEST_F(ConfigTest, NoCredentials) {
    const config_error e = load_error("{}");
    EXPECT_STREQ(e.what(), "config: zoom: no credentials: set zoom.account_id, zoom.client_id and "
                           "zoom.client_secret, or zoom.access_token");
    EXPECT_EQ(load_error(R"({"zoom": {"access_token": ""}})").key(), "zoom");
}

TEST_F(ConfigTest, PartialOAuthCredentialsNameTheMissingOne) {
    EXPECT_EQ(load_error(R"({"zoom": {"account_id": "a", "client_id": "c"}})").key(), "zoom.client_secret");
    EXPECT_EQ(load_error(R"({"zoom": {"account_id": "a", "client_secret": "s"}})").key(), "zoom.client_id");
    EXPECT_EQ(load_error(R"({"zoom": {"client_id": "c", "client_secret": "s"}})").key(), "zoom.account_id");
    const config_error e = load_error(R"({"zoom": {"client_secret": "s"}})");
    EXPECT_EQ(e.key(), "zoom.account_id");
    EXPECT_EQ(e.reason(), "is required for S2S OAuth: set it, or ZOOM_ACCOUNT_ID or ZOOM_ACCOUNT_ID_FILE");
}

TEST_F(ConfigTest, OAuthCredentialsAndAnAccessTokenExcludeEachOther) {
    const config_error e = load_error(
        R"({"zoom": {"account_id": "a", "client_id": "c", "client_secret": "s", "access_token": "t"}})");
    EXPECT_EQ(e.key(), "zoom");
    EXPECT_THAT(e.reason(), HasSubstr("set only one"));
    EXPECT_EQ(load_error(R"({"zoom": {"access_token": "t"}})", {{"ZOOM_ACCOUNT_ID", "a"}}).key(), "zoom");
}

TEST_F(ConfigTest, OAuthCredentials) {
    const config cfg = load(R"({"zoom": {"account_id": "a", "client_id": "c", "client_secret": "s"}})");
    EXPECT_TRUE(cfg.zoom.uses_oauth());
    EXPECT_EQ(cfg.zoom.access_token, "");
}

// --- environment ---------------------------------------------------------------------------------

TEST_F(ConfigTest, EnvironmentSuppliesAndOverridesCredentials) {
    config cfg = load(
        "{}", {{"ZOOM_ACCOUNT_ID", "env-a"}, {"ZOOM_CLIENT_ID", "env-c"}, {"ZOOM_CLIENT_SECRET", "env-s"}});
    EXPECT_EQ(cfg.zoom.account_id, "env-a");
    EXPECT_EQ(cfg.zoom.client_id, "env-c");
    EXPECT_EQ(cfg.zoom.client_secret, "env-s");
    cfg = load(R"({"zoom": {"access_token": "file-token"}})", {{"ZOOM_ACCESS_TOKEN", "env-token"}});
    EXPECT_EQ(cfg.zoom.access_token, "env-token");
    // The file names the account; the secret parts come from the environment.
    cfg = load(R"({"zoom": {"account_id": "file-a"}})",
               {{"ZOOM_CLIENT_ID", "env-c"}, {"ZOOM_CLIENT_SECRET", "env-s"}});
    EXPECT_EQ(cfg.zoom.account_id, "file-a");
    EXPECT_EQ(cfg.zoom.client_secret, "env-s");
}

TEST_F(ConfigTest, EmptyVariablesCountAsUnset) {
    const fs::path secret = write("secret.txt", "from-file\n");
    const config cfg = load(R"({"zoom": {"account_id": "a", "client_id": "c", "client_secret": "file-s"}})",
                            {{"ZOOM_ACCESS_TOKEN", ""},
                             {"ZOOM_CLIENT_ID", ""},
                             {"ZOOM_CLIENT_SECRET", ""},
                             {"ZOOM_CLIENT_SECRET_FILE", secret.string()},
                             {"TOKEN_BROKER_PORT", ""},
                             {"TOKEN_BROKER_ADDRESS", ""}});
    EXPECT_EQ(cfg.zoom.access_token, "");
    EXPECT_EQ(cfg.zoom.client_id, "c");
    EXPECT_EQ(cfg.zoom.client_secret, "from-file");
    EXPECT_EQ(cfg.server.port, 8080);
    EXPECT_EQ(cfg.server.address, "127.0.0.1");
}

TEST_F(ConfigTest, FileVariablesAreReadWithoutTrailingWhitespace) {
    const config cfg = load("{}", {{"ZOOM_ACCOUNT_ID_FILE", write("a.txt", "acct\n").string()},
                                   {"ZOOM_CLIENT_ID_FILE", write("c.txt", "client").string()},
                                   {"ZOOM_CLIENT_SECRET_FILE", write("s.txt", "secret \r\n\n").string()}});
    EXPECT_EQ(cfg.zoom.account_id, "acct");
    EXPECT_EQ(cfg.zoom.client_id, "client");
    EXPECT_EQ(cfg.zoom.client_secret, "secret");
    EXPECT_TRUE(cfg.zoom.uses_oauth());
}

TEST_F(ConfigTest, FileVariablesAreRelativeToTheCurrentDirectory) {
    write("run/secrets/token", "tok\n");
    write("etc/config.json", "{}");
    const current_directory cd(dir() / "run");
    const config cfg =
        load_config(dir() / "etc/config.json", lookup_in({{"ZOOM_ACCESS_TOKEN_FILE", "secrets/token"}}));
    EXPECT_EQ(cfg.zoom.access_token, "tok");
}

TEST_F(ConfigTest, NameAndNameFileTogetherIsAnError) {
    const fs::path file = write("token", "x");
    for (const std::string name :
         {"ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_ACCESS_TOKEN"}) {
        SCOPED_TRACE(name);
        const config_error e = load_error(with_token, {{name, "v"}, {name + "_FILE", file.string()}});
        EXPECT_EQ(e.key(), name + "_FILE");
        EXPECT_EQ(e.reason(), "cannot be set together with " + name);
    }
}

TEST_F(ConfigTest, UnreadableOrEmptyFileVariables) {
    const fs::path missing = dir() / "no-such-secret";
    config_error e = load_error("{}", {{"ZOOM_ACCESS_TOKEN_FILE", missing.string()}});
    EXPECT_EQ(e.key(), "ZOOM_ACCESS_TOKEN_FILE");
    EXPECT_EQ(e.reason(), "cannot read " + missing.string() + ": No such file or directory");
    e = load_error("{}", {{"ZOOM_CLIENT_SECRET_FILE", dir().string()}});
    EXPECT_EQ(e.key(), "ZOOM_CLIENT_SECRET_FILE");
    EXPECT_THAT(e.reason(), StartsWith("cannot read " + dir().string() + ": "));
    e = load_error("{}", {{"ZOOM_ACCESS_TOKEN_FILE", write("empty", "\n").string()}});
    EXPECT_EQ(e.key(), "ZOOM_ACCESS_TOKEN_FILE");
    EXPECT_THAT(e.reason(), HasSubstr("is empty"));
    e = load_error("{}", {{"ZOOM_ACCESS_TOKEN_FILE", write("two-lines", "line1\nline2\n").string()}});
    EXPECT_EQ(e.key(), "ZOOM_ACCESS_TOKEN_FILE");
    EXPECT_EQ(e.reason(), "must hold only visible ASCII characters (no spaces or line breaks)");
    e = load_error("{}", {{"ZOOM_ACCESS_TOKEN", "has space"}});
    EXPECT_EQ(e.key(), "ZOOM_ACCESS_TOKEN");
}

TEST_F(ConfigTest, ServerAndLogOverrides) {
    const config cfg = load(with_token, {{"TOKEN_BROKER_ADDRESS", "::1"},
                                         {"TOKEN_BROKER_PORT", "9090"},
                                         {"TOKEN_BROKER_LOG_LEVEL", "trace"}});
    EXPECT_EQ(cfg.server.address, "::1");
    EXPECT_EQ(cfg.server.port, 9090);
    EXPECT_EQ(cfg.log.level, spdlog::level::trace);
    EXPECT_EQ(load(with_token, {{"TOKEN_BROKER_PORT", "65535"}}).server.port, 65535);
    EXPECT_EQ(load(with_token, {{"TOKEN_BROKER_PORT", "1"}}).server.port, 1);
}

TEST_F(ConfigTest, BadServerAndLogOverridesNameTheVariable) {
    for (const std::string port :
         {"0", "65536", "70000", "80a", "-1", " 80", "+80", "0x50", "8080.0", "99999999999"}) {
        SCOPED_TRACE(port);
        EXPECT_STREQ(load_error(with_token, {{"TOKEN_BROKER_PORT", port}}).what(),
                     "config: TOKEN_BROKER_PORT: must be an integer from 1 to 65535");
    }
    EXPECT_EQ(load_error(with_token, {{"TOKEN_BROKER_ADDRESS", "my-host"}}).key(), "TOKEN_BROKER_ADDRESS");
    EXPECT_EQ(load_error(with_token, {{"TOKEN_BROKER_LOG_LEVEL", "loud"}}).key(), "TOKEN_BROKER_LOG_LEVEL");
}

// --- listener, TLS and files -----------------------------------------------------------------------

TEST_F(ConfigTest, NoKeysAreAllowedOnlyOnLoopbackOrWhenExplicitlyUnauthenticated) {
    const config_error e = load_error(R"({"zoom": {"access_token": "t"}, "server": {"address": "0.0.0.0"}})");
    EXPECT_EQ(e.key(), "auth.keys");
    EXPECT_THAT(e.reason(), HasSubstr("0.0.0.0"));
    EXPECT_EQ(load_error(with_token, {{"TOKEN_BROKER_ADDRESS", "10.1.2.3"}}).key(), "auth.keys");

    EXPECT_TRUE(load(R"({"zoom": {"access_token": "t"}, "server": {"address": "0.0.0.0"},
                         "auth": {"allow_unauthenticated": true}})")
                    .auth.allow_unauthenticated);
    EXPECT_EQ(load(R"({"zoom": {"access_token": "t"}, "server": {"address": "0.0.0.0"},
                       "auth": {"keys": [{"name": "k", "sha256": ")" +
                   std::string(sha_abc) + R"(", "users": ["*"]}]}})")
                  .auth.keys.size(),
              1u);
    for (const std::string address : {"127.0.0.1", "127.3.2.1", "::1", "localhost"}) {
        SCOPED_TRACE(address);
        EXPECT_EQ(load(with_token, {{"TOKEN_BROKER_ADDRESS", address}}).server.address, address);
    }
}

TEST_F(ConfigTest, AnEmptyKeysFileIsNoKeys) {
    write("keys.json", "[]");
    const config_error e = load_error(
        R"({"zoom": {"access_token": "t"}, "server": {"address": "::"}, "auth": {"keys_file": "keys.json"}})");
    EXPECT_EQ(e.key(), "auth.keys");
}

TEST(LoopbackAddress, RecognisesLoopbackOnly) {
    for (const char* address :
         {"127.0.0.1", "127.255.255.254", "127.0.0.0", "::1", "localhost", "::ffff:127.0.0.1"})
        EXPECT_TRUE(is_loopback_address(address)) << address;
    for (const char* address :
         {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "126.255.255.255", "::2", "::ffff:10.0.0.1",
          "localhost.example.com", "LOCALHOST.", "", "garbage", "127.0.0.1 "})
        EXPECT_FALSE(is_loopback_address(address)) << address;
}

TEST(PortNumber, DecimalDigitsFrom1To65535) {
    EXPECT_EQ(parse_port_number("1"), 1);
    EXPECT_EQ(parse_port_number("8080"), 8080);
    EXPECT_EQ(parse_port_number("00443"), 443);
    EXPECT_EQ(parse_port_number("65535"), 65535);
    for (const char* bad : {"", "0", "65536", "99999", "131072", "99999999999999999999999", "-1", "+80",
                            " 80", "80 ", "0x50", "8o", "80.0"})
        EXPECT_EQ(parse_port_number(bad), std::nullopt) << bad;
}

TEST_F(ConfigTest, TlsFilesGoTogether) {
    write_tls_files("cert.pem", "key.pem", "ca.pem");
    EXPECT_EQ(
        load_error(R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "cert.pem"}}})").key(),
        "server.tls.key_file");
    EXPECT_EQ(
        load_error(R"({"zoom": {"access_token": "t"}, "server": {"tls": {"key_file": "key.pem"}}})").key(),
        "server.tls.cert_file");
    EXPECT_EQ(
        load_error(R"({"zoom": {"access_token": "t"}, "server": {"tls": {"client_ca_file": "ca.pem"}}})")
            .key(),
        "server.tls.client_ca_file");
    const config cfg = load(
        R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "cert.pem", "key_file": "key.pem"}}})");
    EXPECT_TRUE(cfg.server.tls.enabled());
    EXPECT_EQ(cfg.server.tls.client_ca_file, "");
}

TEST_F(ConfigTest, NamedFilesMustBeReadable) {
    write("cert.pem", "c");
    write("key.pem", "k");
    fs::create_directories(dir() / "a-directory");
    config_error e = load_error(R"({"zoom": {"access_token": "t", "ca_file": "missing.pem"}})");
    EXPECT_EQ(e.key(), "zoom.ca_file");
    EXPECT_EQ(e.reason(), "cannot read " + (dir() / "missing.pem").string() + ": No such file or directory");
    e = load_error(R"({"zoom": {"access_token": "t", "ca_file": "a-directory"}})");
    EXPECT_EQ(e.key(), "zoom.ca_file");
    e = load_error(
        R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "missing.pem", "key_file": "key.pem"}}})");
    EXPECT_EQ(e.key(), "server.tls.cert_file");
    e = load_error(
        R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": "cert.pem", "key_file": "missing.pem"}}})");
    EXPECT_EQ(e.key(), "server.tls.key_file");
    e = load_error(R"({"zoom": {"access_token": "t"},
        "server": {"tls": {"cert_file": "cert.pem", "key_file": "key.pem", "client_ca_file": "missing.pem"}}})");
    EXPECT_EQ(e.key(), "server.tls.client_ca_file");
}

// What the listener would find at start is found when the configuration is loaded (and so by
// --check-config): each file is loaded as the listener loads it.
TEST_F(ConfigTest, TlsFilesMustHoldWhatTheyAreFor) {
    write_tls_files("cert.pem", "key.pem", "ca.pem");
    write("garbage.pem", "not PEM at all");
    write("truncated.pem", "-----BEGIN CERTIFICATE-----\n");
    const zoom_sim::pem_pair other = test_ca().issue("other", {"other"}, {});
    write("other-key.pem", other.key);
    auto tls = [](std::string_view cert, std::string_view key, std::string_view ca = "") {
        std::string text = R"({"zoom": {"access_token": "t"}, "server": {"tls": {"cert_file": ")" +
                           std::string(cert) + R"(", "key_file": ")" + std::string(key) + '"';
        if (!ca.empty())
            text += R"(, "client_ca_file": ")" + std::string(ca) + '"';
        return text + "}}}";
    };
    for (const char* bad : {"garbage.pem", "truncated.pem", "key.pem"}) {
        SCOPED_TRACE(bad);
        const config_error e = load_error(tls(bad, "key.pem"));
        EXPECT_EQ(e.key(), "server.tls.cert_file");
        EXPECT_THAT(e.reason(), StartsWith("cannot be used: "));
    }
    for (const char* bad : {"garbage.pem", "truncated.pem", "cert.pem"}) {
        SCOPED_TRACE(bad);
        const config_error e = load_error(tls("cert.pem", bad));
        EXPECT_EQ(e.key(), "server.tls.key_file");
        EXPECT_THAT(e.reason(), StartsWith("cannot be used: "));
    }
    const config_error mismatch = load_error(tls("cert.pem", "other-key.pem"));
    EXPECT_EQ(mismatch.key(), "server.tls.key_file");
    EXPECT_EQ(mismatch.reason(),
              "is not the private key of the certificate in " + (dir() / "cert.pem").string());
    for (const char* bad : {"garbage.pem", "truncated.pem", "key.pem"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(load_error(tls("cert.pem", "key.pem", bad)).key(), "server.tls.client_ca_file");
    }
    EXPECT_TRUE(load(tls("cert.pem", "key.pem", "ca.pem")).server.tls.enabled());
}

// CONTRACT.md section 2: zoom.ca_file is a PEM bundle; anything else is a configuration error, not a
// failure to connect to Zoom later.
TEST_F(ConfigTest, ZoomCaFileMustBeAPemBundle) {
    write("ca.pem", test_ca().cert_pem());
    write("empty.pem", "");
    write("garbage.pem", "not PEM at all");
    write("truncated.pem", "-----BEGIN CERTIFICATE-----\n");
    write("key.pem", server_identity().key);
    for (const char* bad : {"empty.pem", "garbage.pem", "truncated.pem", "key.pem"}) {
        SCOPED_TRACE(bad);
        const config_error e =
            load_error(R"({"zoom": {"access_token": "t", "ca_file": ")" + std::string(bad) + R"("}})");
        EXPECT_EQ(e.key(), "zoom.ca_file");
        EXPECT_THAT(e.what(), StartsWith("config: zoom.ca_file: is not a PEM bundle of CA certificates: "));
    }
    EXPECT_EQ(load(R"({"zoom": {"access_token": "t", "ca_file": "ca.pem"}})").zoom.ca_file,
              (dir() / "ca.pem").string());
}

TEST_F(ConfigTest, RelativePathsAreRelativeToTheConfigFile) {
    write_tls_files("etc/tls/cert.pem", "etc/tls/key.pem", "shared/ca.pem");
    write("etc/keys.json", "[]");
    const std::string text = R"({"zoom": {"access_token": "t", "ca_file": "../shared/ca.pem"},
        "server": {"tls": {"cert_file": "tls/cert.pem", "key_file": ")" +
                             (dir() / "etc/tls/key.pem").string() + R"("}},
        "auth": {"keys_file": "./keys.json"}})";
    write("etc/config.json", text);
    // Loaded from elsewhere, and by a relative name, so that neither the current directory nor the
    // way the file was named can stand in for the configuration file's directory.
    const current_directory cd(dir() / "shared");
    const config cfg = load_config("../etc/config.json", lookup_in({}));
    EXPECT_EQ(cfg.server.tls.cert_file, (dir() / "etc/tls/cert.pem").string());
    EXPECT_EQ(cfg.server.tls.key_file, (dir() / "etc/tls/key.pem").string());
    EXPECT_EQ(cfg.zoom.ca_file, (dir() / "shared/ca.pem").string());
    EXPECT_EQ(cfg.auth.keys_file, (dir() / "etc/keys.json").string());
}

// --- redis and server.max_body_bytes (CONTRACT.md sections 2 and 7) -------------------------------

// Two encryption keys as configured (64 hex digits) and as decoded (32 bytes).
const std::string key_a_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string key_b_hex = "F0E1D2C3B4A5968778695A4B3C2D1E0FF0E1D2C3B4A5968778695A4B3C2D1E0F";
std::string bytes_of(std::string_view hex) {
    std::string bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2)
        bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return bytes;
}

std::string with_redis(std::string_view members) {
    return R"({"zoom": {"access_token": "t"}, "redis": {)" + std::string(members) + "}}";
}

TEST_F(ConfigTest, RedisAndBodyLimitDefaults) {
    const config cfg = load(with_token);
    EXPECT_EQ(cfg.server.max_body_bytes, 65536u);
    EXPECT_FALSE(cfg.redis.enabled());
    EXPECT_EQ(cfg.redis.url, "");
    EXPECT_EQ(cfg.redis.key_prefix, "token-broker:");
    EXPECT_TRUE(cfg.redis.password.empty());
    EXPECT_TRUE(cfg.redis.encryption_key.empty());
    EXPECT_TRUE(cfg.redis.previous_encryption_key.empty());
    EXPECT_EQ(cfg.redis.ca_file, "");
    EXPECT_EQ(cfg.redis.connect_timeout, milliseconds(1000));
    EXPECT_EQ(cfg.redis.command_timeout, milliseconds(250));
    EXPECT_EQ(cfg.redis.max_reply_bytes, 1048576u);
    EXPECT_EQ(cfg.redis.invalidation_lease, milliseconds(1000));
    EXPECT_EQ(cfg.redis.lock_lease, milliseconds(2000));
}

TEST_F(ConfigTest, ReadsTheRedisBlock) {
    write("redis-ca.pem", test_ca().cert_pem());
    config cfg = load(R"({"zoom": {"access_token": "t"}, "server": {"max_body_bytes": 1024},
        "redis": {"url": "rediss://broker@redis.example.com:6380/3", "password": "p a$$ word",
                  "ca_file": "redis-ca.pem", "key_prefix": "tb:eu:", "encryption_key": ")" +
                      key_a_hex + R"(", "previous_encryption_key": ")" + key_b_hex + R"(",
                  "connect_timeout_ms": 2000, "command_timeout_ms": 100, "max_reply_bytes": 65536,
                  "invalidation_lease_ms": 600, "lock_lease_ms": 3000}})");
    EXPECT_EQ(cfg.server.max_body_bytes, 1024u);
    const redis_config& r = cfg.redis;
    EXPECT_TRUE(r.enabled());
    EXPECT_EQ(r.url, "rediss://broker@redis.example.com:6380/3");
    EXPECT_TRUE(r.tls);
    EXPECT_EQ(r.host, "redis.example.com");
    EXPECT_EQ(r.port, 6380);
    EXPECT_EQ(r.db, 3);
    EXPECT_EQ(r.user, "broker");
    EXPECT_EQ(r.password.reveal(), "p a$$ word");
    EXPECT_EQ(r.ca_file, (dir() / "redis-ca.pem").string());
    EXPECT_EQ(r.key_prefix, "tb:eu:");
    EXPECT_EQ(r.encryption_key.reveal(), bytes_of(key_a_hex));
    EXPECT_EQ(r.previous_encryption_key.reveal(), bytes_of(key_b_hex));
    EXPECT_EQ(r.connect_timeout, milliseconds(2000));
    EXPECT_EQ(r.command_timeout, milliseconds(100));
    EXPECT_EQ(r.max_reply_bytes, 65536u);
    EXPECT_EQ(r.invalidation_lease, milliseconds(600));
    EXPECT_EQ(r.lock_lease, milliseconds(3000));

    const std::string key = R"("encryption_key": ")" + key_a_hex + '"';
    cfg = load(with_redis(R"("url": "redis://localhost", )" + key));
    EXPECT_FALSE(cfg.redis.tls);
    EXPECT_EQ(cfg.redis.host, "localhost");
    EXPECT_EQ(cfg.redis.port, 6379);
    EXPECT_EQ(cfg.redis.db, 0);
    EXPECT_EQ(cfg.redis.user, "");
    EXPECT_TRUE(cfg.redis.previous_encryption_key.empty());
    cfg = load(with_redis(R"("url": "REDIS://[::1]:7000/", )" + key));
    EXPECT_EQ(cfg.redis.host, "::1");
    EXPECT_EQ(cfg.redis.port, 7000);
    EXPECT_EQ(cfg.redis.db, 0);
    cfg = load(with_redis(R"("url": "redis://10.0.0.5/15", )" + key));
    EXPECT_EQ(cfg.redis.host, "10.0.0.5");
    EXPECT_EQ(cfg.redis.db, 15);

    // Without a url there is no Redis, and no secret is kept.
    cfg = load(with_redis(R"("password": "pw", )" + key));
    EXPECT_FALSE(cfg.redis.enabled());
    EXPECT_TRUE(cfg.redis.password.empty());
    EXPECT_TRUE(cfg.redis.encryption_key.empty());
}

TEST_F(ConfigTest, RejectsEveryBadRedisValueNamingItsKey) {
    write("ca.pem", test_ca().cert_pem());
    write("not-pem.pem", "not PEM");
    const std::string form = redis_url_form;
    const std::string key = R"(, "encryption_key": ")" + key_a_hex + '"';
    const std::string hex = "must be 64 hexadecimal digits (32 bytes), as `openssl rand -hex 32` writes";
    const std::string positive = "must be a positive integer";
    const std::string reply_range = "must be an integer from 65536 to 1073741824";
    struct bad {
        std::string members;
        std::string key;
        std::string reason;
    };
    const std::vector<bad> cases = {
        {R"("url": 6379)", "redis.url", "must be a string"},
        {R"("url": "localhost:6379")" + key, "redis.url", form},
        {R"("url": "http://localhost")" + key, "redis.url", form},
        {R"("url": "redis://")" + key, "redis.url", form},
        {R"("url": "redis:///0")" + key, "redis.url", form},
        {R"("url": "not a url")" + key, "redis.url", form},
        {R"("url": "redis://h:0")" + key, "redis.url", "must have a port from 1 to 65535, if any"},
        {R"("url": "redis://h:65536")" + key, "redis.url", "must have a port from 1 to 65535, if any"},
        {R"("url": "redis://h:")" + key, "redis.url", "must have a port from 1 to 65535, if any"},
        {R"("url": "redis://h?db=1")" + key, "redis.url", "must not have a query or a fragment"},
        {R"("url": "redis://h#x")" + key, "redis.url", "must not have a query or a fragment"},
        {R"("url": "redis://h/x")" + key, "redis.url",
         "must name its database as /0, /1 ...: a number from 0 to 2147483647"},
        {R"("url": "redis://h/1/2")" + key, "redis.url",
         "must name its database as /0, /1 ...: a number from 0 to 2147483647"},
        {R"("url": "redis://h/-1")" + key, "redis.url",
         "must name its database as /0, /1 ...: a number from 0 to 2147483647"},
        {R"("url": "redis://h/99999999999")" + key, "redis.url",
         "must name its database as /0, /1 ...: a number from 0 to 2147483647"},
        {R"("url": "redis://u%0Ax@h")" + key, "redis.url",
         "must hold only visible ASCII characters in its host and user name"},
        {R"("url": "redis://h")", "redis.encryption_key",
         "is required with redis.url: 64 hexadecimal digits (32 bytes), in the file or in "
         "TOKEN_BROKER_REDIS_ENCRYPTION_KEY or TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE"},
        {R"("encryption_key": ")" + key_a_hex.substr(1) + '"', "redis.encryption_key", hex},
        {R"("encryption_key": ")" + key_a_hex + "0\"", "redis.encryption_key", hex},
        {R"("encryption_key": ")" + key_a_hex.substr(1) + "g\"", "redis.encryption_key", hex},
        {R"("encryption_key": 1)", "redis.encryption_key", "must be a string"},
        {R"("previous_encryption_key": "abc")", "redis.previous_encryption_key", hex},
        {R"("password": "a\nb")", "redis.password",
         "must not hold control characters (such as a line break)"},
        {R"("password": 1)", "redis.password", "must be a string"},
        {R"("key_prefix": "a b")", "redis.key_prefix",
         "must be at most 64 visible ASCII characters (no spaces)"},
        {R"("key_prefix": ")" + std::string(65, 'k') + '"', "redis.key_prefix",
         "must be at most 64 visible ASCII characters (no spaces)"},
        {R"("connect_timeout_ms": 0)", "redis.connect_timeout_ms", positive},
        {R"("command_timeout_ms": -1)", "redis.command_timeout_ms", positive},
        {R"("command_timeout_ms": "250")", "redis.command_timeout_ms", positive},
        {R"("command_timeout_ms": 86400001)", "redis.command_timeout_ms",
         "must be at most 86400000 (one day)"},
        {R"("max_reply_bytes": 65535)", "redis.max_reply_bytes", reply_range},
        {R"("max_reply_bytes": 1073741825)", "redis.max_reply_bytes", reply_range},
        {R"("max_reply_bytes": -1)", "redis.max_reply_bytes", reply_range},
        {R"("max_reply_bytes": "1048576")", "redis.max_reply_bytes", reply_range},
        {R"("max_reply_bytes": 1048576.5)", "redis.max_reply_bytes", reply_range},
        {R"("invalidation_lease_ms": 29)", "redis.invalidation_lease_ms",
         "must be an integer from 30 to 3600000"},
        {R"("invalidation_lease_ms": 3600001)", "redis.invalidation_lease_ms",
         "must be at most 3600000 (one hour)"},
        {R"("lock_lease_ms": 0)", "redis.lock_lease_ms", "must be an integer from 30 to 3600000"},
        {R"("lock_lease_ms": "2000")", "redis.lock_lease_ms", "must be an integer from 30 to 3600000"},
        {R"("url": "redis://h", "ca_file": "ca.pem")" + key, "redis.ca_file",
         "is only for TLS: redis.url must then be rediss://, rediss+sentinel:// or rediss+cluster://"},
        {R"("url": "rediss://h", "ca_file": "missing.pem")" + key, "redis.ca_file",
         "cannot read " + (dir() / "missing.pem").string() + ": No such file or directory"},
        {R"("url": "redis://h", "bogus": 1)", "redis.bogus", "unknown key"},
    };
    for (const bad& c : cases) {
        SCOPED_TRACE(c.members);
        const config_error e = load_error(with_redis(c.members));
        EXPECT_EQ(e.key(), c.key);
        EXPECT_EQ(e.reason(), c.reason);
    }
    EXPECT_EQ(load_error(with_redis(R"("url": "rediss://h", "ca_file": "not-pem.pem")" + key)).key(),
              "redis.ca_file");
    EXPECT_EQ(load_error(R"({"zoom": {"access_token": "t"}, "redis": []})").reason(), "must be an object");

    for (const char* bad_size : {"0", "-1", "1048577", R"("65536")", "1.5"}) {
        SCOPED_TRACE(bad_size);
        const config_error e = load_error(R"({"zoom": {"access_token": "t"}, "server": {"max_body_bytes": )" +
                                          std::string(bad_size) + "}}");
        EXPECT_EQ(e.key(), "server.max_body_bytes");
        EXPECT_EQ(e.reason(),
                  std::string(bad_size) == "1048577" ? "must be at most 1048576 (1 MiB)" : positive);
    }
    EXPECT_EQ(load(R"({"zoom": {"access_token": "t"}, "server": {"max_body_bytes": 1048576}})")
                  .server.max_body_bytes,
              1048576u);
}

// redis+sentinel:// (CONTRACT.md section 7, "Redis that survives a node"): the sentinels in order,
// the master's name and db; the URL's user is the data nodes'; sentinel_password is the sentinels'.
TEST_F(ConfigTest, ReadsASentinelUrl) {
    const std::string key = R"(, "encryption_key": ")" + key_a_hex + '"';
    config cfg = load(
        with_redis(R"("url": "redis+sentinel://broker@s1.example.com:26380,10.0.0.2,[::1]:5000/mymaster/3", )"
                   R"("password": "data-pw", "sentinel_password": "sentinel-pw")" +
                   key));
    const redis_config& r = cfg.redis;
    EXPECT_TRUE(r.sentinel());
    EXPECT_FALSE(r.tls);
    EXPECT_EQ(r.master_name, "mymaster");
    EXPECT_EQ(r.db, 3);
    EXPECT_EQ(r.user, "broker");
    EXPECT_EQ(r.password.reveal(), "data-pw");
    EXPECT_EQ(r.sentinel_password.reveal(), "sentinel-pw");
    EXPECT_EQ(r.sentinels,
              (std::vector<redis_endpoint>{{"s1.example.com", 26380}, {"10.0.0.2", 26379}, {"::1", 5000}}));

    write("ca.pem", test_ca().cert_pem());
    cfg = load(with_redis(R"("url": "RediSS+Sentinel://s1/m.1/", "ca_file": "ca.pem")" + key));
    EXPECT_TRUE(cfg.redis.tls);
    EXPECT_EQ(cfg.redis.master_name, "m.1");
    EXPECT_EQ(cfg.redis.db, 0);
    EXPECT_EQ(cfg.redis.sentinels, (std::vector<redis_endpoint>{{"s1", 26379}}));

    // From the environment, with the sentinels' password from a file.
    const fs::path password_file = write("sentinel-password", "from-file\n");
    cfg = load(with_token, {{"TOKEN_BROKER_REDIS_URL", "redis+sentinel://a:1,b:2/name"},
                            {"TOKEN_BROKER_REDIS_SENTINEL_PASSWORD_FILE", password_file.string()},
                            {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY", key_a_hex}});
    EXPECT_EQ(cfg.redis.sentinels, (std::vector<redis_endpoint>{{"a", 1}, {"b", 2}}));
    EXPECT_EQ(cfg.redis.sentinel_password.reveal(), "from-file");

    // A plain URL after a Sentinel one (the environment over the file) is not a Sentinel setup.
    cfg = load(with_redis(R"("url": "redis+sentinel://a/name")" + key),
               {{"TOKEN_BROKER_REDIS_URL", "redis://h"}});
    EXPECT_FALSE(cfg.redis.sentinel());
    EXPECT_EQ(cfg.redis.host, "h");
}

// redis+cluster:// (CONTRACT.md section 7, "Redis that survives a node"): the seeds in order, port
// 6379 by default; the URL's user and redis.password are every node's.
TEST_F(ConfigTest, ReadsAClusterUrl) {
    write("ca.pem", test_ca().cert_pem());
    const std::string key = R"(, "encryption_key": ")" + key_a_hex + '"';
    auto cfg = load(with_redis(R"("url": "redis+cluster://broker@n1.example.com:7000,10.0.0.2,[::1]:7002", )"
                               R"("password": "node-pw")" +
                               key));
    const auto& r = cfg.redis;
    EXPECT_TRUE(r.cluster());
    EXPECT_FALSE(r.sentinel());
    EXPECT_FALSE(r.tls);
    EXPECT_EQ(r.user, "broker");
    EXPECT_EQ(r.password.reveal(), "node-pw");
    EXPECT_EQ(r.db, 0);
    EXPECT_EQ(r.cluster_seeds,
              (std::vector<redis_endpoint>{{"n1.example.com", 7000}, {"10.0.0.2", 6379}, {"::1", 7002}}));

    for (const auto* url : {"RediSS+Cluster://n1/", "rediss+cluster://n1/0"}) {
        SCOPED_TRACE(url);
        cfg = load(with_redis(R"("url": ")" + std::string(url) + R"(", "ca_file": "ca.pem")" + key));
        EXPECT_TRUE(cfg.redis.tls);
        EXPECT_EQ(cfg.redis.cluster_seeds, (std::vector<redis_endpoint>{{"n1", 6379}}));
    }

    // From the environment; then a plain URL after a cluster one is not a cluster.
    cfg = load(with_token, {{"TOKEN_BROKER_REDIS_URL", "redis+cluster://a:1,b:2"},
                            {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY", key_a_hex}});
    EXPECT_EQ(cfg.redis.cluster_seeds, (std::vector<redis_endpoint>{{"a", 1}, {"b", 2}}));
    cfg = load(with_redis(R"("url": "redis+cluster://a")" + key), {{"TOKEN_BROKER_REDIS_URL", "redis://h"}});
    EXPECT_FALSE(cfg.redis.cluster());
    EXPECT_EQ(cfg.redis.host, "h");
}

TEST_F(ConfigTest, RejectsEveryBadClusterUrlNamingItsKey) {
    const std::string key = R"(, "encryption_key": ")" + key_a_hex + '"';
    const std::string form =
        "must be redis+cluster://[user@]host1[:port],host2[:port] (or rediss+cluster://): at least one node";
    const std::string db = "must not name a database other than /0: a Redis Cluster has only database 0";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"redis+cluster://", form},
        {"redis+cluster:///0", form},
        {"redis+cluster://a,", form},
        {"redis+cluster://,a", form},
        {"redis+cluster://a:0", "must have ports from 1 to 65535, if any"},
        {"redis+cluster://a,b:65536", "must have ports from 1 to 65535, if any"},
        {"redis+cluster://a/1", db},
        {"redis+cluster://a/m", db},
        {"redis+cluster://a//", db},
        {"redis+cluster://a?x=1", "must not have a query or a fragment"},
        {"redis+cluster://a#x", "must not have a query or a fragment"},
        {"redis+cluster://u:secret@a",
         "must not hold a password (URLs get logged): set redis.password or TOKEN_BROKER_REDIS_PASSWORD"},
    };
    for (const auto& [url, reason] : cases) {
        SCOPED_TRACE(url);
        const config_error e = load_error(with_redis(R"("url": ")" + url + '"' + key));
        EXPECT_EQ(e.key(), "redis.url");
        EXPECT_EQ(e.reason(), reason);
        EXPECT_THAT(e.what(), Not(HasSubstr("secret")));
        const config_error from_env = load_error(with_token, {{"TOKEN_BROKER_REDIS_URL", url}});
        EXPECT_EQ(from_env.key(), "TOKEN_BROKER_REDIS_URL");
    }
    const config_error e =
        load_error(with_redis(R"("url": "redis+cluster://a", "sentinel_password": "p")" + key));
    EXPECT_EQ(e.key(), "redis.sentinel_password");
}

TEST_F(ConfigTest, RejectsEveryBadSentinelUrlNamingItsKey) {
    const std::string key = R"(, "encryption_key": ")" + key_a_hex + '"';
    const std::string form =
        "must be redis+sentinel://[user@]host1[:port],host2[:port]/MASTERNAME[/db] (or rediss+sentinel://): "
        "at least one sentinel and a master name";
    const std::string db = "must name its database as /0, /1 ...: a number from 0 to 2147483647";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"redis+sentinel://", form},
        {"redis+sentinel:///m", form},
        {"redis+sentinel://a,/m", form},
        {"redis+sentinel://,a/m", form},
        {"redis+sentinel://a", form},
        {"redis+sentinel://a/", form},
        {"redis+sentinel://a//0", form},
        {"redis+sentinel://a/m%20x", form},
        {"redis+sentinel://a:0/m", "must have ports from 1 to 65535, if any"},
        {"redis+sentinel://a:65536,b/m", "must have ports from 1 to 65535, if any"},
        {"redis+sentinel://a/m/x", db},
        {"redis+sentinel://a/m/-1", db},
        {"redis+sentinel://a/m/1/2", db},
        {"redis+sentinel://a/m?x=1", "must not have a query or a fragment"},
        {"redis+sentinel://a/m#x", "must not have a query or a fragment"},
        {"redis+sentinel://u:secret@a/m",
         "must not hold a password (URLs get logged): set redis.password or TOKEN_BROKER_REDIS_PASSWORD"},
    };
    for (const auto& [url, reason] : cases) {
        SCOPED_TRACE(url);
        const config_error e = load_error(with_redis(R"("url": ")" + url + '"' + key));
        EXPECT_EQ(e.key(), "redis.url");
        EXPECT_EQ(e.reason(), reason);
        EXPECT_THAT(e.what(), Not(HasSubstr("secret")));
        const config_error from_env = load_error(with_token, {{"TOKEN_BROKER_REDIS_URL", url}});
        EXPECT_EQ(from_env.key(), "TOKEN_BROKER_REDIS_URL");
    }
    const config_error e = load_error(with_redis(R"("url": "redis://h", "sentinel_password": "p")" + key));
    EXPECT_EQ(e.key(), "redis.sentinel_password");
    EXPECT_EQ(e.reason(),
              "is only for Sentinel: redis.url must then be redis+sentinel:// or rediss+sentinel://");
    EXPECT_EQ(
        load_error(with_redis(R"("url": "redis+sentinel://a/m", "sentinel_password": "a\nb")" + key)).key(),
        "redis.sentinel_password");
}

// A password in the URL is refused without the password (or the URL) in the message.
TEST_F(ConfigTest, APasswordInTheRedisUrlIsRefusedWithoutQuotingIt) {
    const std::string password = "Zr8Kq2Wd5Tn";
    for (const std::string& url : {"redis://:" + password + "@h", "rediss://user:" + password + "@h:6380/1",
                                   "redis://user:" + password + "%40@h"}) {
        SCOPED_TRACE(url);
        const config_error e =
            load_error(with_redis(R"("url": ")" + url + R"(", "encryption_key": ")" + key_a_hex + '"'));
        EXPECT_EQ(e.key(), "redis.url");
        EXPECT_EQ(e.reason(), "must not hold a password (URLs get logged): set redis.password or "
                              "TOKEN_BROKER_REDIS_PASSWORD");
        EXPECT_THAT(e.what(), Not(HasSubstr(password)));
        const config_error from_env = load_error(with_token, {{"TOKEN_BROKER_REDIS_URL", url}});
        EXPECT_EQ(from_env.key(), "TOKEN_BROKER_REDIS_URL");
        EXPECT_THAT(from_env.what(), Not(HasSubstr(password)));
    }
}

TEST_F(ConfigTest, RedisEnvironmentOverridesTheFile) {
    const fs::path key_file = write("key", key_b_hex + "\n");
    const fs::path password_file = write("password", "from-file\n");
    config cfg = load(with_redis(R"("url": "redis://file-host", "password": "in-file", "encryption_key": ")" +
                                 key_a_hex + '"'),
                      {{"TOKEN_BROKER_REDIS_URL", "rediss://env-host:7000/2"},
                       {"TOKEN_BROKER_REDIS_PASSWORD_FILE", password_file.string()},
                       {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE", key_file.string()},
                       {"TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY", key_a_hex}});
    EXPECT_EQ(cfg.redis.url, "rediss://env-host:7000/2");
    EXPECT_TRUE(cfg.redis.tls);
    EXPECT_EQ(cfg.redis.host, "env-host");
    EXPECT_EQ(cfg.redis.port, 7000);
    EXPECT_EQ(cfg.redis.db, 2);
    EXPECT_EQ(cfg.redis.password.reveal(), "from-file");
    EXPECT_EQ(cfg.redis.encryption_key.reveal(), bytes_of(key_b_hex));
    EXPECT_EQ(cfg.redis.previous_encryption_key.reveal(), bytes_of(key_a_hex));

    // The environment alone is enough.
    cfg = load(with_token, {{"TOKEN_BROKER_REDIS_URL", "redis://h"},
                            {"TOKEN_BROKER_REDIS_PASSWORD", "pw"},
                            {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY", key_a_hex}});
    EXPECT_TRUE(cfg.redis.enabled());
    EXPECT_EQ(cfg.redis.password.reveal(), "pw");
    EXPECT_EQ(cfg.redis.encryption_key.reveal(), bytes_of(key_a_hex));

    // Errors name the variable.
    const std::string hex = "must be 64 hexadecimal digits (32 bytes), as `openssl rand -hex 32` writes";
    const std::vector<std::tuple<env_map, std::string, std::string>> cases = {
        {{{"TOKEN_BROKER_REDIS_URL", "http://h"}}, "TOKEN_BROKER_REDIS_URL", redis_url_form},
        {{{"TOKEN_BROKER_REDIS_ENCRYPTION_KEY", "abc"}}, "TOKEN_BROKER_REDIS_ENCRYPTION_KEY", hex},
        {{{"TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE", password_file.string()}},
         "TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE",
         hex},
        {{{"TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY", key_a_hex + "00"}},
         "TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY",
         hex},
        {{{"TOKEN_BROKER_REDIS_PASSWORD", "a\rb"}},
         "TOKEN_BROKER_REDIS_PASSWORD",
         "must not hold control characters (such as a line break)"},
        {{{"TOKEN_BROKER_REDIS_PASSWORD", "a"}, {"TOKEN_BROKER_REDIS_PASSWORD_FILE", password_file.string()}},
         "TOKEN_BROKER_REDIS_PASSWORD_FILE",
         "cannot be set together with TOKEN_BROKER_REDIS_PASSWORD"},
        {{{"TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE", (dir() / "missing").string()}},
         "TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE",
         "cannot read " + (dir() / "missing").string() + ": No such file or directory"},
        {{{"TOKEN_BROKER_REDIS_URL", "redis://h"}},
         "redis.encryption_key",
         "is required with redis.url: 64 hexadecimal digits (32 bytes), in the file or in "
         "TOKEN_BROKER_REDIS_ENCRYPTION_KEY or TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE"},
    };
    for (const auto& [env, key, reason] : cases) {
        SCOPED_TRACE(key);
        const config_error e = load_error(with_token, env);
        EXPECT_EQ(e.key(), key);
        EXPECT_EQ(e.reason(), reason);
    }
}

// No error about Redis quotes its password or an encryption key, however it is given.
TEST_F(ConfigTest, NoRedisErrorHoldsASecret) {
    const std::string token_only(with_token);
    const std::string password = "Hv3Ns8Lq1Xc";
    const std::string key = "9b" + std::string(61, 'c'); // 63 digits: one short
    const fs::path key_file = write("key", key + "\n");
    const fs::path password_file = write("password", password + "\n" + password + "\n");
    const std::vector<std::pair<std::string, env_map>> cases = {
        {with_redis(R"("url": "redis://u:)" + password + R"(@h")"), {}},
        {with_redis(R"("url": "redis://h", "password": ")" + password + R"(\u0007", "encryption_key": ")" +
                    key + '"'),
         {}},
        {with_redis(R"("url": "redis://h", "encryption_key": ")" + key + '"'), {}},
        {with_redis(R"("url": "redis://h", "previous_encryption_key": ")" + key + "zz\""), {}},
        {with_redis(R"("url": "redis://h", "password": ")" + password + R"(", "password": "x")"), {}},
        {with_redis(R"("url": "redis://h", "password": ")" + password + R"(" x)"), {}},
        {token_only, {{"TOKEN_BROKER_REDIS_URL", "rediss://:" + password + "@h"}}},
        {token_only, {{"TOKEN_BROKER_REDIS_URL", "redis://h"}, {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY", key}}},
        {token_only,
         {{"TOKEN_BROKER_REDIS_URL", "redis://h"},
          {"TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE", key_file.string()}}},
        {token_only,
         {{"TOKEN_BROKER_REDIS_URL", "redis://h"},
          {"TOKEN_BROKER_REDIS_PASSWORD_FILE", password_file.string()}}},
        {token_only,
         {{"TOKEN_BROKER_REDIS_PASSWORD", password},
          {"TOKEN_BROKER_REDIS_PASSWORD_FILE", password_file.string()}}},
    };
    for (const auto& [text, env] : cases) {
        SCOPED_TRACE(text);
        const config_error e = load_error(text, env);
        EXPECT_THAT(e.what(), Not(HasSubstr(password)));
        EXPECT_THAT(e.what(), Not(HasSubstr(key.substr(0, 20))));
    }
}

// --- caller keys -----------------------------------------------------------------------------------

std::string key_json(std::string_view name, std::string_view sha256, std::string_view users = R"(["*"])") {
    return R"({"name": ")" + std::string(name) + R"(", "sha256": ")" + std::string(sha256) +
           R"(", "users": )" + std::string(users) + "}";
}

TEST(CallerKeys, DecodesTheDigest) {
    const auto keys = parse_caller_keys(json::parse("[" + key_json("a", sha_abc, "[]") + "]"), "auth.keys");
    ASSERT_EQ(keys.size(), 1u);
    const std::array<std::uint8_t, 32> expected = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    EXPECT_EQ(keys[0].sha256, expected);
    EXPECT_TRUE(keys[0].users.empty());
    EXPECT_TRUE(parse_caller_keys(json::parse("[]"), "auth.keys").empty());
}

TEST(CallerKeys, NamesAndDigestsAreUnique) {
    try {
        parse_caller_keys(json::parse("[" + key_json("a", sha_abc) + "," + key_json("a", sha_other) + "]"),
                          "auth.keys");
        FAIL() << "accepted a repeated name";
    } catch (const config_error& e) {
        EXPECT_STREQ(e.what(), R"(config: auth.keys[1].name: "a" is also the name of auth.keys[0])");
    }
    try {
        parse_caller_keys(json::parse("[" + key_json("a", sha_abc) + "," + key_json("b", sha_other) + "," +
                                      key_json("c", sha_abc) + "]"),
                          "somewhere");
        FAIL() << "accepted a repeated digest";
    } catch (const config_error& e) {
        EXPECT_STREQ(e.what(), "config: somewhere[2].sha256: is also the sha256 of somewhere[0]");
    }
}

TEST_F(ConfigTest, KeysFileAsAnArrayOrAnObject) {
    const fs::path as_array = write("array.json", "[" + key_json("one", sha_abc) + "]");
    const fs::path as_object =
        write("object.json", R"({"keys": [)" + key_json("two", sha_other, R"(["x"])") + "]}");
    auto keys = load_keys_file(as_array);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(keys[0].name, "one");
    keys = load_keys_file(as_object);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(keys[0].name, "two");
    EXPECT_EQ(keys[0].users, std::vector<std::string>{"x"});

    const config cfg = load(R"({"zoom": {"access_token": "t"}, "server": {"address": "0.0.0.0"},
        "auth": {"keys": [)" +
                            key_json("inline", sha_other) + R"(], "keys_file": "array.json"}})");
    ASSERT_EQ(cfg.auth.keys.size(), 2u);
    EXPECT_EQ(cfg.auth.keys[0].name, "inline");
    EXPECT_EQ(cfg.auth.keys[1].name, "one");
}

TEST_F(ConfigTest, KeysFileErrors) {
    const std::string bad_digest = key_json("x", "abc");
    const std::string array = write("array.json", "[" + bad_digest + "]").string();
    const std::string object = write("object.json", R"({"keys": [)" + bad_digest + "]}").string();
    const std::string extra = write("extra.json", R"({"keys": [], "comment": "x"})").string();
    const std::string keyless = write("keyless.json", R"({})").string();
    const std::string number = write("number.json", "5").string();
    const std::string broken = write("broken.json", "[\n{").string();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {array, array + "[0].sha256: must be 64 hexadecimal digits: the SHA-256 of the key"},
        {object, object + ": keys[0].sha256: must be 64 hexadecimal digits: the SHA-256 of the key"},
        {extra, extra + ": comment: unknown key"},
        {keyless, keyless + ": keys: is required"},
        {number, number + R"(: must hold a JSON array of keys or an object {"keys": [...]})"},
        {broken, broken + ": invalid JSON: line 2, column 2: incomplete JSON"},
        {(dir() / "missing.json").string(),
         (dir() / "missing.json").string() + ": cannot read: No such file or directory"},
    };
    for (const auto& [file, message] : cases) {
        SCOPED_TRACE(file);
        try {
            load_keys_file(file);
            ADD_FAILURE() << "no error";
        } catch (const config_error& e) {
            EXPECT_EQ(e.what(), "config: " + message);
        }
        const config_error e =
            load_error(R"({"zoom": {"access_token": "t"}, "auth": {"keys_file": ")" + file + R"("}})");
        EXPECT_EQ(e.key(), "auth.keys_file");
        EXPECT_EQ(e.reason(), message);
    }
}

TEST_F(ConfigTest, KeysFileNamesMustNotRepeatInlineKeys) {
    write("keys.json", "[" + key_json("dup", sha_other) + "]");
    config_error e = load_error(R"({"zoom": {"access_token": "t"},
        "auth": {"keys": [)" + key_json("dup", sha_abc) +
                                R"(], "keys_file": "keys.json"}})");
    EXPECT_EQ(e.key(), "auth.keys_file");
    EXPECT_THAT(e.reason(), HasSubstr(R"(key name "dup" is also used in auth.keys)"));
    write("keys.json", "[" + key_json("other", sha_abc) + "]");
    e = load_error(R"({"zoom": {"access_token": "t"},
        "auth": {"keys": [)" +
                   key_json("dup", sha_abc) + R"(], "keys_file": "keys.json"}})");
    EXPECT_EQ(e.key(), "auth.keys_file");
    EXPECT_THAT(e.reason(), HasSubstr("same sha256"));
}

// --- secrets ---------------------------------------------------------------------------------------

TEST_F(ConfigTest, NoErrorMessageHoldsASecret) {
    const std::string secret = "Qx7Pz9Kw2VbLm";
    const fs::path secret_file = write("secret", secret + "\n");
    const fs::path two_line_file = write("two-lines", secret + "\n" + secret + "\n");
    const std::vector<std::pair<std::string, env_map>> cases = {
        {R"({"zoom": {"access_token": ")" + secret +
             R"(", "account_id": "a", "client_id": "c", "client_secret": ")" + secret + R"("}})",
         {}},
        {R"({"zoom": {"client_secret": ")" + secret + R"("}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"( "}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"(", "access_token": "x"}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"(" x}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"(}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"("}, "server": {"port": 0}})", {}},
        {R"({"zoom": {"access_token": ")" + secret + R"("}, "server": {"address": "0.0.0.0"}})", {}},
        {"{}", {{"ZOOM_CLIENT_SECRET", secret}, {"ZOOM_CLIENT_SECRET_FILE", secret_file.string()}}},
        {"{}", {{"ZOOM_CLIENT_SECRET", secret}}},
        {"{}", {{"ZOOM_ACCESS_TOKEN", secret + " x"}}},
        {"{}", {{"ZOOM_ACCESS_TOKEN_FILE", two_line_file.string()}}},
        {"{}", {{"ZOOM_ACCESS_TOKEN", secret}, {"ZOOM_CLIENT_SECRET_FILE", secret_file.string()}}},
        {R"({"zoom": {"access_token": ")" + secret + R"("}})", {{"TOKEN_BROKER_PORT", secret}}},
        {R"({"zoom": {"access_token": ")" + secret + R"("}})", {{"TOKEN_BROKER_LOG_LEVEL", secret}}},
    };
    for (const auto& [text, env] : cases) {
        SCOPED_TRACE(text);
        const config_error e = load_error(text, env);
        EXPECT_THAT(e.what(), Not(HasSubstr(secret)));
    }
}

// --- the example configurations ---------------------------------------------------------------------

// Every key of CONTRACT.md section 2.
const std::vector<std::string> all_keys = {
    "server.address",
    "server.port",
    "server.threads",
    "server.header_timeout_ms",
    "server.idle_timeout_ms",
    "server.drain_timeout_ms",
    "server.max_header_bytes",
    "server.max_connections",
    "server.tls.cert_file",
    "server.tls.key_file",
    "server.tls.client_ca_file",
    "zoom.api_base_url",
    "zoom.oauth_token_url",
    "zoom.account_id",
    "zoom.client_id",
    "zoom.client_secret",
    "zoom.access_token",
    "zoom.ca_file",
    "zoom.connect_timeout_ms",
    "zoom.request_timeout_ms",
    "zoom.max_connections",
    "zoom.max_retries",
    "zoom.requests_per_second",
    "cache.max_entries",
    "cache.refresh_margin_s",
    "cache.negative_ttl_s",
    "auth.keys",
    "auth.keys_file",
    "auth.allow_unauthenticated",
    "log.level",
    "log.format",
    "server.max_body_bytes",
    "redis.url",
    "redis.password",
    "redis.ca_file",
    "redis.key_prefix",
    "redis.encryption_key",
    "redis.previous_encryption_key",
    "redis.connect_timeout_ms",
    "redis.command_timeout_ms",
    "redis.max_reply_bytes",
    "redis.invalidation_lease_ms",
    "redis.lock_lease_ms",
};

void collect_keys(const json::object& object, const std::string& prefix, std::vector<std::string>& out) {
    for (const auto& member : object) {
        const std::string key = prefix + std::string(member.key());
        if (member.value().is_object())
            collect_keys(member.value().as_object(), key + ".", out);
        else
            out.push_back(key);
    }
}

TEST_F(ConfigTest, ProductionExampleHasEveryKeyWithItsDefault) {
    const fs::path example = fs::path(SOURCE_DIR) / "config/token-broker.json";
    std::vector<std::string> keys;
    collect_keys(json::parse(testing::read_file(example)).as_object(), "", keys);
    std::sort(keys.begin(), keys.end());
    std::vector<std::string> expected = all_keys;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(keys, expected);
}

TEST_F(ConfigTest, ProductionExampleLoadsWithCredentialsFromTheEnvironment) {
    const fs::path example = fs::path(SOURCE_DIR) / "config/token-broker.json";
    try {
        load_config(example, lookup_in({}));
        FAIL() << "the example has credentials";
    } catch (const config_error& e) {
        EXPECT_EQ(e.key(), "zoom");
    }
    const config cfg = load_config(example, lookup_in({{"ZOOM_ACCESS_TOKEN", "x"}}));
    const config defaults;
    EXPECT_EQ(cfg.server.address, "0.0.0.0");
    EXPECT_EQ(cfg.server.port, defaults.server.port);
    EXPECT_EQ(cfg.server.threads, defaults.server.threads);
    EXPECT_EQ(cfg.server.header_timeout, defaults.server.header_timeout);
    EXPECT_EQ(cfg.server.idle_timeout, defaults.server.idle_timeout);
    EXPECT_EQ(cfg.server.drain_timeout, defaults.server.drain_timeout);
    EXPECT_EQ(cfg.server.max_header_bytes, defaults.server.max_header_bytes);
    EXPECT_EQ(cfg.server.max_connections, defaults.server.max_connections);
    EXPECT_FALSE(cfg.server.tls.enabled());
    EXPECT_EQ(cfg.zoom.api_base_url, defaults.zoom.api_base_url);
    EXPECT_EQ(cfg.zoom.oauth_token_url, defaults.zoom.oauth_token_url);
    EXPECT_EQ(cfg.zoom.ca_file, "");
    EXPECT_EQ(cfg.zoom.connect_timeout, defaults.zoom.connect_timeout);
    EXPECT_EQ(cfg.zoom.request_timeout, defaults.zoom.request_timeout);
    EXPECT_EQ(cfg.zoom.max_connections, defaults.zoom.max_connections);
    EXPECT_EQ(cfg.zoom.max_retries, defaults.zoom.max_retries);
    EXPECT_EQ(cfg.zoom.requests_per_second, defaults.zoom.requests_per_second);
    EXPECT_EQ(cfg.cache.max_entries, defaults.cache.max_entries);
    EXPECT_EQ(cfg.cache.refresh_margin, defaults.cache.refresh_margin);
    EXPECT_EQ(cfg.cache.negative_ttl, defaults.cache.negative_ttl);
    ASSERT_EQ(cfg.auth.keys.size(), 1u);
    EXPECT_EQ(cfg.auth.keys_file, "");
    EXPECT_FALSE(cfg.auth.allow_unauthenticated);
    EXPECT_EQ(cfg.log.level, defaults.log.level);
    EXPECT_EQ(cfg.log.format, defaults.log.format);
    EXPECT_EQ(cfg.redis.max_reply_bytes, defaults.redis.max_reply_bytes);
}

TEST(ConfigReadme, DocumentsEveryKeyAndVariable) {
    const std::string readme = testing::read_file(fs::path(SOURCE_DIR) / "config/README.md");
    for (const std::string& key : all_keys)
        EXPECT_THAT(readme, HasSubstr("`" + key + "`"));
    for (const char* variable :
         {"ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_ACCESS_TOKEN",
          "TOKEN_BROKER_ADDRESS", "TOKEN_BROKER_PORT", "TOKEN_BROKER_LOG_LEVEL", "TOKEN_BROKER_REDIS_URL",
          "TOKEN_BROKER_REDIS_PASSWORD", "TOKEN_BROKER_REDIS_ENCRYPTION_KEY",
          "TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY"})
        EXPECT_THAT(readme, HasSubstr(std::string("`") + variable));
}

TEST_F(ConfigTest, DevConfigNeedsTheSimulatorsCa) {
    // A copy laid out as in the source tree: config/dev.json names ../build/zoom-sim/ca.pem.
    write("config/dev.json", testing::read_file(fs::path(SOURCE_DIR) / "config/dev.json"));
    try {
        load_config(dir() / "config/dev.json", lookup_in({}));
        FAIL() << "loaded without the simulator's CA";
    } catch (const config_error& e) {
        EXPECT_EQ(e.key(), "zoom.ca_file");
    }
    write("build/zoom-sim/ca.pem", test_ca().cert_pem());
    const config cfg = load_config(dir() / "config/dev.json", lookup_in({}));
    EXPECT_EQ(cfg.server.address, "127.0.0.1");
    EXPECT_EQ(cfg.server.port, 8080);
    EXPECT_EQ(cfg.zoom.api_base_url, "https://localhost:8443/v2");
    EXPECT_EQ(cfg.zoom.oauth_token_url, "https://localhost:8443/oauth/token");
    EXPECT_EQ(cfg.zoom.account_id, "sim-account");
    EXPECT_EQ(cfg.zoom.client_id, "sim-client");
    EXPECT_EQ(cfg.zoom.client_secret, "sim-secret");
    EXPECT_EQ(cfg.zoom.ca_file, (dir() / "build/zoom-sim/ca.pem").string());
    EXPECT_TRUE(cfg.auth.keys.empty());
    EXPECT_EQ(cfg.log.level, spdlog::level::info);
    // The webhook listener README's quick start posts a signed event to.
    EXPECT_EQ(cfg.webhook.port, 8090);
    EXPECT_EQ(cfg.webhook.address, "127.0.0.1");
    EXPECT_EQ(cfg.webhook.secret_token.reveal(), "dev-webhook-secret-token");
}

// ---------------------------------------------------------------------------------------------
// webhook.* (CONTRACT.md sections 2 and 9)

TEST_F(ConfigTest, WebhookDefaultsToOff) {
    const config cfg = load(with_token);
    EXPECT_FALSE(cfg.webhook.enabled());
    EXPECT_EQ(cfg.webhook.address, "127.0.0.1");
    EXPECT_EQ(cfg.webhook.port, 0);
    EXPECT_EQ(cfg.webhook.path, "/zoom/webhook");
    EXPECT_TRUE(cfg.webhook.secret_token.empty());
    EXPECT_EQ(cfg.webhook.tolerance, seconds(5400));
    EXPECT_EQ(cfg.webhook.max_body_bytes, 65536u);
    EXPECT_FALSE(cfg.webhook.tls.enabled());
}

TEST_F(ConfigTest, WebhookReadsEveryKey) {
    write_tls_files("hook-cert.pem", "hook-key.pem", "unused-ca.pem");
    const config cfg = load(R"({"zoom": {"access_token": "t"}, "webhook": {
        "address": "0.0.0.0", "port": 8443, "path": "/hooks/zoom", "secret_token": "s3cr3t",
        "tolerance_s": 300, "max_body_bytes": 4096,
        "tls": {"cert_file": "hook-cert.pem", "key_file": "hook-key.pem"}}})");
    EXPECT_TRUE(cfg.webhook.enabled());
    EXPECT_EQ(cfg.webhook.address, "0.0.0.0");
    EXPECT_EQ(cfg.webhook.port, 8443);
    EXPECT_EQ(cfg.webhook.path, "/hooks/zoom");
    EXPECT_EQ(cfg.webhook.secret_token.reveal(), "s3cr3t");
    EXPECT_EQ(cfg.webhook.tolerance, seconds(300));
    EXPECT_EQ(cfg.webhook.max_body_bytes, 4096u);
    EXPECT_TRUE(cfg.webhook.tls.enabled());
    EXPECT_EQ(cfg.webhook.tls.cert_file, (dir() / "hook-cert.pem").string());
    EXPECT_EQ(cfg.webhook.tls.key_file, (dir() / "hook-key.pem").string());
}

TEST_F(ConfigTest, WebhookPortWithoutASecretTokenIsAnError) {
    const config_error e = load_error(R"({"zoom": {"access_token": "t"}, "webhook": {"port": 8081}})");
    EXPECT_EQ(e.key(), "webhook.secret_token");
    EXPECT_THAT(e.reason(), HasSubstr("ZOOM_WEBHOOK_SECRET_TOKEN"));
}

TEST_F(ConfigTest, WebhookBadValuesNameTheirKey) {
    const std::tuple<std::string, std::string, std::string> cases[] = {
        {R"("path": "zoom/webhook")", "webhook.path", "must start with '/'"},
        {R"("path": "")", "webhook.path", "must start with '/'"},
        {R"("path": "/a?b")", "webhook.path", "without '?'"},
        {R"("port": 65536)", "webhook.port", "from 0 (off) to 65535"},
        {R"("port": -1)", "webhook.port", "from 0 (off) to 65535"},
        {R"("tolerance_s": 0)", "webhook.tolerance_s", "from 1 to 86400"},
        {R"("max_body_bytes": 0)", "webhook.max_body_bytes", "positive"},
        {R"("address": "example.com")", "webhook.address", ""},
        {R"("frobnicate": 1)", "webhook.frobnicate", ""},
    };
    for (const auto& [member, key, reason] : cases) {
        const config_error e = load_error(
            R"({"zoom": {"access_token": "t"}, "webhook": {"secret_token": "s", )" + member + "}}");
        EXPECT_EQ(e.key(), key) << member;
        EXPECT_THAT(e.reason(), HasSubstr(reason)) << member;
    }
    const config_error e =
        load_error(R"({"zoom": {"access_token": "t"}, "webhook": {"secret_token": "a b"}})");
    EXPECT_EQ(e.key(), "webhook.secret_token");
    EXPECT_THAT(e.reason(), HasSubstr("visible ASCII"));
}

TEST_F(ConfigTest, WebhookTlsFilesMustLoad) {
    write_tls_files("cert.pem", "key.pem", "ca.pem");
    write("garbage.pem", "not a certificate\n");
    const std::string head =
        R"({"zoom": {"access_token": "t"}, "webhook": {"port": 8081, "secret_token": "s", )";
    EXPECT_EQ(load_error(head + R"("tls": {"cert_file": "cert.pem"}}})").key(), "webhook.tls.key_file");
    EXPECT_EQ(load_error(head + R"("tls": {"key_file": "key.pem"}}})").key(), "webhook.tls.cert_file");
    EXPECT_EQ(load_error(head + R"("tls": {"cert_file": "missing.pem", "key_file": "key.pem"}}})").key(),
              "webhook.tls.cert_file");
    EXPECT_EQ(load_error(head + R"("tls": {"cert_file": "garbage.pem", "key_file": "key.pem"}}})").key(),
              "webhook.tls.cert_file");
    EXPECT_EQ(load_error(head + R"("tls": {"cert_file": "cert.pem", "key_file": "garbage.pem"}}})").key(),
              "webhook.tls.key_file");
    // A CA's certificate with the server's key: not its key.
    EXPECT_EQ(load_error(head + R"("tls": {"cert_file": "ca.pem", "key_file": "key.pem"}}})").key(),
              "webhook.tls.key_file");
}

TEST_F(ConfigTest, WebhookEnvironmentOverridesTheFile) {
    write("hook-secret", "from-file\n");
    const config cfg =
        load(R"({"zoom": {"access_token": "t"}, "webhook": {"port": 1, "secret_token": "file"}})",
             {{"ZOOM_WEBHOOK_SECRET_TOKEN_FILE", (dir() / "hook-secret").string()},
              {"TOKEN_BROKER_WEBHOOK_PORT", "9090"}});
    EXPECT_EQ(cfg.webhook.secret_token.reveal(), "from-file");
    EXPECT_EQ(cfg.webhook.port, 9090);
    const config env_only =
        load(with_token, {{"ZOOM_WEBHOOK_SECRET_TOKEN", "env"}, {"TOKEN_BROKER_WEBHOOK_PORT", "8081"}});
    EXPECT_EQ(env_only.webhook.secret_token.reveal(), "env");
    EXPECT_TRUE(env_only.webhook.enabled());
    const config off = load(R"({"zoom": {"access_token": "t"}, "webhook": {"port": 1, "secret_token": "s"}})",
                            {{"TOKEN_BROKER_WEBHOOK_PORT", "0"}});
    EXPECT_FALSE(off.webhook.enabled());
    EXPECT_TRUE(off.webhook.secret_token.empty()) << "a secret that is not used is not kept";
    EXPECT_EQ(load_error(with_token, {{"TOKEN_BROKER_WEBHOOK_PORT", "8081"}}).key(), "webhook.secret_token");
    EXPECT_EQ(load_error(with_token, {{"TOKEN_BROKER_WEBHOOK_PORT", "http"}}).key(),
              "TOKEN_BROKER_WEBHOOK_PORT");
    EXPECT_EQ(
        load_error(with_token, {{"ZOOM_WEBHOOK_SECRET_TOKEN", "a"}, {"ZOOM_WEBHOOK_SECRET_TOKEN_FILE", "b"}})
            .key(),
        "ZOOM_WEBHOOK_SECRET_TOKEN_FILE");
}

TEST_F(ConfigTest, WebhookSecretTokenNeverInAnError) {
    const config_error e = load_error(
        R"({"zoom": {"access_token": "t"}, "webhook": {"port": 8081, "secret_token": "hunter2-secret", "path": "x"}})");
    EXPECT_THAT(std::string(e.what()), Not(HasSubstr("hunter2-secret")));
}

} // namespace
} // namespace token_broker
