// Fuzzes the configuration loader (config/config.hpp) with the input as the configuration file and
// an empty environment. The file is written to a directory made once per process and removed at exit
// (under $TMPDIR, else /dev/shm, else /tmp: rewriting a file on a disk costs milliseconds, in memory
// a fraction of one), so relative paths in it resolve there. load_config itself reads it, as the
// service does.
//
// Besides the sanitizers, each input is checked against what load_config promises:
// - it returns or throws config_error, nothing else (any other exception ends the run);
// - a configuration it returns keeps the contract: credentials of exactly one kind, positive
//   timeouts, keys or a loopback listener or allow_unauthenticated;
// - an error message never holds the value of zoom.client_secret or zoom.access_token. Checked for a
//   value of at least 8 bytes that appears nowhere else in the file (so quoting another string cannot
//   look like a leak) and holds one of ! $ ^ | ~, which neither the loader's own words nor the
//   scratch path use (so a secret such as "required" cannot match the text of a message).
#include "config/config.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace token_broker;
namespace fs = std::filesystem;
namespace json = boost::json;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_config: broken promise: %s\n", what);
        std::abort();
    }
}

struct scratch_directory {
    fs::path dir;
    fs::path file;

    scratch_directory() {
        const char* tmp = std::getenv("TMPDIR");
        std::error_code ec;
        const fs::path parent = tmp && *tmp                        ? fs::path(tmp)
                                : fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm")
                                                                   : fs::path("/tmp");
        std::string pattern = (parent / "fuzz_config.XXXXXX").string();
        require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp works");
        dir = pattern;
        file = dir / "token-broker.json";
    }
    ~scratch_directory() {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    }
};

// Every string and key of `v`, decoded.
void collect_strings(const json::value& v, std::vector<std::string_view>& out) {
    if (const json::object* o = v.if_object()) {
        for (const auto& member : *o) {
            out.emplace_back(member.key().data(), member.key().size());
            collect_strings(member.value(), out);
        }
    } else if (const json::array* a = v.if_array()) {
        for (const json::value& element : *a)
            collect_strings(element, out);
    } else if (const json::string* s = v.if_string()) {
        out.emplace_back(s->data(), s->size());
    }
}

// The values of zoom.client_secret and zoom.access_token that no other string of the file contains.
std::vector<std::string> unique_secrets(const json::value& root) {
    std::vector<std::string> secrets;
    const json::object* top = root.if_object();
    const json::value* zoom = top ? top->if_contains("zoom") : nullptr;
    if (!zoom || !zoom->is_object())
        return secrets;
    std::vector<std::string_view> strings;
    collect_strings(root, strings);
    for (const char* name : {"client_secret", "access_token"}) {
        const json::value* v = zoom->get_object().if_contains(name);
        if (!v || !v->is_string() || v->get_string().size() < 8)
            continue;
        const std::string_view value(v->get_string().data(), v->get_string().size());
        if (value.find_first_of("!$^|~") == std::string_view::npos)
            continue;
        std::size_t holders = 0;
        for (std::string_view s : strings)
            holders += s.find(value) != std::string_view::npos;
        if (holders == 1)
            secrets.emplace_back(value);
    }
    return secrets;
}

void check_config(const config& cfg) {
    const zoom_config& z = cfg.zoom;
    const bool oauth = !z.account_id.empty() && !z.client_id.empty() && !z.client_secret.empty();
    require(oauth != !z.access_token.empty(), "credentials of exactly one kind");
    require(cfg.server.port >= 1, "a port from 1 to 65535");
    require(cfg.server.threads >= 1, "at least one server thread");
    require(cfg.server.header_timeout.count() > 0 && cfg.server.idle_timeout.count() > 0,
            "positive server timeouts");
    require(z.connect_timeout.count() > 0 && z.request_timeout.count() > 0, "positive Zoom timeouts");
    require(z.requests_per_second > 0, "a positive request budget");
    require(!cfg.auth.keys.empty() || cfg.auth.allow_unauthenticated ||
                is_loopback_address(cfg.server.address),
            "keys, a loopback listener or allow_unauthenticated");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const scratch_directory scratch;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    {
        std::ofstream out(scratch.file, std::ios::binary | std::ios::trunc);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        require(static_cast<bool>(out.flush()), "the scratch file can be written");
    }

    const env_lookup empty_environment = [](std::string_view) { return std::optional<std::string>(); };
    try {
        check_config(load_config(scratch.file, empty_environment));
    } catch (const config_error& e) {
        boost::system::error_code ec;
        const json::value root = json::parse(text, ec);
        if (ec)
            return 0;
        const std::string_view message = e.what();
        for (const std::string& secret : unique_secrets(root))
            require(message.find(secret) == std::string_view::npos, "no secret in an error message");
    }
    return 0;
}
