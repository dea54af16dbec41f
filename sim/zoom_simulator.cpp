#include "zoom_simulator.hpp"

#include "test_certs.hpp"
#include "webhook/signature.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace zoom_sim {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace urls = boost::urls;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

using tls_stream = ssl::stream<beast::tcp_stream>;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

constexpr auto handshake_timeout = 10s;
constexpr auto idle_timeout = 120s;
constexpr auto write_timeout = 30s;
constexpr auto shutdown_timeout = 2s;
constexpr auto stop_grace = 500ms;
constexpr std::size_t header_limit = 16 * 1024;
constexpr std::size_t body_limit = 64 * 1024;
constexpr std::size_t max_received_targets = 100000;
constexpr std::size_t max_remembered_access_tokens = 10000;

constexpr std::uint32_t default_zak_ttl = 7200;
constexpr std::uint32_t default_onbehalf_ttl = 1800;
constexpr std::uint32_t token_type_lifetime = 14 * 24 * 3600;
constexpr std::uint32_t max_ttl = 31536000;

// ---------------------------------------------------------------------------------------------
// Encodings, all done by OpenSSL.

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    return out;
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64url(std::string_view bytes) {
    std::string out = base64(bytes);
    std::replace(out.begin(), out.end(), '+', '-');
    std::replace(out.begin(), out.end(), '/', '_');
    out.erase(out.find_last_not_of('=') + 1);
    return out;
}

// Standard base64 with padding, as in an HTTP Basic credential; nullopt when it is not base64.
std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0)
        return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0)
        return std::nullopt;
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t size = static_cast<std::size_t>(n);
    if (text.ends_with("=="))
        size -= 2;
    else if (text.ends_with('='))
        size -= 1;
    out.resize(size);
    return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &size) == nullptr)
        throw std::runtime_error("HMAC failed");
    return std::string(reinterpret_cast<const char*>(mac.data()), size);
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && beast::iequals(text.substr(0, prefix.size()), prefix);
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in)
        throw std::runtime_error("cannot read " + path.string());
    return text.str();
}

// Writes through a temporary name so that a reader waiting for the file never sees half of it.
void write_file_atomically(const fs::path& path, const std::string& contents, bool private_file) {
    const fs::path partial = path.string() + ".partial";
    write_file(partial.string(), contents);
    if (private_file)
        fs::permissions(partial, fs::perms::owner_read | fs::perms::owner_write);
    fs::rename(partial, path);
}

void report_exception(std::exception_ptr e) {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        std::fprintf(stderr, "zoom-sim: %s\n", x.what());
    } catch (...) {
        std::fprintf(stderr, "zoom-sim: unknown exception\n");
    }
}

// ---------------------------------------------------------------------------------------------
// What a request is, decided before faults are applied.

enum class route { oauth, user_token, admin, unknown };

// What an admin call asks (POST /admin/users/{userId}/{deactivate,activate,sign_out},
// POST /admin/app/{deauthorize,authorize}, POST /admin/webhook, GET /admin/counters); none: a path
// under /admin/ that is none of them.
enum class admin_action {
    none,
    deactivate,
    activate,
    sign_out,
    deauthorize,
    authorize,
    set_webhook,
    counters
};

struct classified_request {
    route where = route::unknown;
    std::string user; // percent-decoded, for user_token and the admin calls on a user
    admin_action action = admin_action::none;
};

classified_request classify(const request& req) {
    auto target = urls::parse_origin_form(req.target());
    if (!target)
        return {};
    const auto segments = target->segments();
    std::vector<std::string> parts(segments.begin(), segments.end());
    if (parts.size() == 2 && parts[0] == "oauth" && parts[1] == "token")
        return {route::oauth, {}};
    if (parts.size() == 4 && parts[0] == "v2" && parts[1] == "users" && !parts[2].empty() &&
        parts[3] == "token")
        return {route::user_token, std::move(parts[2])};
    if (parts.empty() || parts[0] != "admin")
        return {};
    if (parts.size() == 3 && parts[1] == "app" && parts[2] == "deauthorize")
        return {route::admin, {}, admin_action::deauthorize};
    if (parts.size() == 3 && parts[1] == "app" && parts[2] == "authorize")
        return {route::admin, {}, admin_action::authorize};
    if (parts.size() == 2 && parts[1] == "webhook")
        return {route::admin, {}, admin_action::set_webhook};
    if (parts.size() == 2 && parts[1] == "counters")
        return {route::admin, {}, admin_action::counters};
    if (parts.size() == 4 && parts[1] == "users" && !parts[2].empty()) {
        const auto action = parts[3] == "deactivate" ? admin_action::deactivate
                            : parts[3] == "activate" ? admin_action::activate
                            : parts[3] == "sign_out" ? admin_action::sign_out
                                                     : admin_action::none;
        return {route::admin, std::move(parts[2]), action};
    }
    return {route::admin, {}, admin_action::none};
}

std::string lower_case(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

// How Zoom's token calls name a user of the simulator: an email without regard to case, an id as it is.
std::string user_key(const std::string& user) {
    return user.find('@') == std::string::npos ? user : lower_case(user);
}

// payload.object of a user event: see simulator::deactivate_user.
struct event_user {
    std::string id;
    std::string email;
};
event_user event_user_of(const std::string& user) {
    if (user.find('@') != std::string::npos) {
        const auto email = lower_case(user);
        return {"sim" + hex(hmac_sha256("zoom-sim user id", email)).substr(0, 22), email};
    }
    return {user, lower_case(user) + "@users.zoom-sim.invalid"};
}

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The event notification for `action` on `user`, as Zoom sends it: its name and body.
std::pair<std::string, std::string> event_for(admin_action action, const std::string& user,
                                              const options& opts) {
    if (action == admin_action::deauthorize) {
        const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        char when[32] = {};
        std::tm parts{};
        gmtime_r(&now, &parts);
        std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &parts);
        const json::object body{{"event", "app_deauthorized"},
                                {"event_ts", unix_ms_now()},
                                {"payload", json::object{{"account_id", opts.account_id},
                                                         {"user_id", "sim-admin"},
                                                         {"signature", hex(random_bytes(32))},
                                                         {"deauthorization_time", when},
                                                         {"client_id", opts.client_id}}}};
        return {"app_deauthorized", json::serialize(body)};
    }
    const std::string name = action == admin_action::deactivate ? "user.deactivated"
                             : action == admin_action::activate ? "user.activated"
                                                                : "user.signed_out";
    const auto who = event_user_of(user);
    const json::object body{{"event", name},
                            {"event_ts", unix_ms_now()},
                            {"payload", json::object{{"account_id", opts.account_id},
                                                     {"operator", "admin@users.zoom-sim.invalid"},
                                                     {"operator_id", "sim-admin"},
                                                     {"object", json::object{{"id", who.id},
                                                                             {"first_name", "Sim"},
                                                                             {"last_name", "User"},
                                                                             {"email", who.email},
                                                                             {"type", 1}}}}}};
    return {name, json::serialize(body)};
}

constexpr auto webhook_timeout = 5s;

// POSTs a signed event to `url` (plain HTTP) and reads the answer, within webhook_timeout.
net::awaitable<simulator::event_delivery> post_event(std::string url, std::string secret_token,
                                                     std::string body) {
    simulator::event_delivery out;
    auto parsed = urls::parse_uri(url);
    if (!parsed || parsed->scheme() != "http" || parsed->host().empty()) {
        out.error = "the webhook URL is not http://host[:port]/path";
        co_return out;
    }
    const std::string host(parsed->host());
    const std::string port = parsed->has_port() ? std::string(parsed->port()) : "80";
    std::string target = parsed->encoded_path().empty() ? "/" : std::string(parsed->encoded_path());
    if (parsed->has_query())
        target += "?" + std::string(parsed->encoded_query());

    auto ex = co_await net::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [resolve_error, endpoints] = co_await resolver.async_resolve(host, port, use_tuple);
    if (resolve_error) {
        out.error = "cannot resolve " + host + ": " + resolve_error.message();
        co_return out;
    }
    beast::tcp_stream stream(ex);
    stream.expires_after(webhook_timeout);
    if (auto [ec, ep] = co_await stream.async_connect(endpoints, use_tuple); ec) {
        out.error = "cannot connect to " + host + ":" + port + ": " + ec.message();
        co_return out;
    }
    const std::string timestamp = std::to_string(unix_ms_now() / 1000);
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, host + ":" + port);
    req.set(http::field::user_agent, "Zoom Marketplace/1.1a (zoom-sim)");
    req.set(http::field::content_type, "application/json; charset=utf-8");
    req.set("x-zm-request-timestamp", timestamp);
    req.set("x-zm-signature", token_broker::webhook::signature(secret_token, timestamp, body));
    req.set("x-zm-request-id", hex(random_bytes(16)));
    req.body() = std::move(body);
    req.prepare_payload();
    if (auto [ec, n] = co_await http::async_write(stream, req, use_tuple); ec) {
        out.error = "sending the event failed: " + ec.message();
        co_return out;
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (auto [ec, n] = co_await http::async_read(stream, buffer, res, use_tuple); ec) {
        out.error = "no answer to the event: " + ec.message();
        co_return out;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    co_return out;
}

std::optional<std::string> find_param(const urls::params_view& params, std::string_view key) {
    auto it = params.find(key);
    if (it == params.end())
        return std::nullopt;
    auto param = *it;
    return param.has_value ? param.value : std::string();
}

// ---------------------------------------------------------------------------------------------
// The server and its connections.

struct connection;

// The server behind a simulator: state, listener, threads.
struct server {
    // State shared by every connection, guarded by `mutex`. Declared before the io_context so that
    // it outlives the connections the io_context may still hold when it is destroyed.
    mutable std::mutex mutex;
    std::condition_variable drained;
    options opts;
    bool owns_cert_dir = false;
    std::string hmac_key;

    std::unordered_map<std::string, user_options> users;
    std::unordered_set<std::string> removed_users;
    std::unordered_set<std::string> deactivated_users; // user_key() of each id and email
    bool app_deauthorized = false; // POST /admin/app/deauthorize until POST /admin/app/authorize
    std::deque<fault> global_faults;
    std::deque<fault> oauth_faults;
    std::unordered_map<std::string, std::deque<fault>> user_faults;
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> access_tokens;
    std::vector<std::string> issued_access_tokens; // every one, revoked or not, up to a bound

    std::unordered_map<std::string, std::uint64_t> token_calls_by_user;
    std::uint64_t token_calls_total = 0;
    std::uint64_t oauth_calls = 0;
    std::uint64_t connections_accepted = 0;
    std::uint64_t open_connections = 0;
    std::deque<std::string> received_targets;
    std::deque<simulator::token_call> token_call_log;

    std::uint64_t next_connection_id = 0;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection>> connections;
    bool stopping = false;
    bool accepting = false;
    std::atomic<std::uint64_t> tracking_counter{0};

    std::mutex stop_mutex; // serialises stop() callers
    bool stopped = false;

    ssl::context tls{ssl::context::tls_server}; // outlives the streams the io_context may still hold
    net::io_context ioc;
    tcp::acceptor acceptor{net::make_strand(ioc)};
    std::vector<std::thread> threads;

    explicit server(options o) : opts(std::move(o)), hmac_key(random_bytes(32)) {}

    void make_certificates();
    void bind();
    void start();
    void stop();

    std::shared_ptr<connection> add_connection(tcp::socket socket);
    void connection_closed(std::uint64_t id);

    // Records the request in the counters and takes the fault that applies to it, if any.
    std::optional<fault> admit(const request& req, const classified_request& what);
    response answer(const request& req, const classified_request& what);
    response fault_answer(const fault& f, const request& req);

    // Changes the state as the admin call asks and makes its event: its name and body.
    std::pair<std::string, std::string> apply_admin(admin_action action, const std::string& user);
    // The webhook URL and Secret Token in force.
    std::pair<std::string, std::string> webhook() const;
    // An admin call: the state changed, the event posted, the webhook's answer passed on.
    net::awaitable<response> admin_answer(const request& req, const classified_request& what);
    // The admin calls that post no event: POST /admin/webhook, GET /admin/counters.
    response webhook_answer(const request& req);
    response counters_answer(const request& req);
    // Whether Zoom knows `user` (not "unknown..." and not removed); an admin call on another is 404.
    bool user_exists_locked(const std::string& user) const;

    response oauth_answer(const request& req);
    response user_token_answer(const request& req, const std::string& user);
    response json_answer(http::status status, const json::value& body, const request& req);
    // `issued_shift` moves iat (and so exp) away from now, in seconds.
    std::string make_jwt(const std::string& user, std::string_view type, std::uint32_t ttl,
                         const std::string& meeting_id, std::int64_t issued_shift = 0);
};

// One TLS connection; lives on its own strand, owned by the coroutine serving it.
struct connection {
    connection(server& s, std::uint64_t i, tcp::socket socket)
        : sim(s), id(i), stream(std::move(socket), s.tls), timer(stream.get_executor()) {}
    ~connection() { sim.connection_closed(id); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Runs on the connection's strand: ends every operation under way on it.
    void close() {
        timer.cancel();
        beast::get_lowest_layer(stream).close();
    }

    server& sim;
    std::uint64_t id;
    tls_stream stream;
    net::steady_timer timer;
};

// Waits until the peer closes the connection or the simulator closes it, discarding what arrives.
net::awaitable<void> wait_for_close(tls_stream& stream) {
    beast::get_lowest_layer(stream).expires_never();
    std::array<char, 1024> scratch{};
    for (;;) {
        auto [ec, n] = co_await stream.async_read_some(net::buffer(scratch), use_tuple);
        if (ec)
            co_return;
    }
}

// Sends the headers and half of the body promised by Content-Length, then drops the TCP connection.
net::awaitable<void> cut_mid_answer(tls_stream& stream, response res) {
    const std::string body = res.body();
    const std::size_t sent = body.size() / 2;
    res.content_length(body.size() + 64);
    http::response_serializer<http::string_body> serializer(res);
    beast::get_lowest_layer(stream).expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple);
    if (!ec) {
        beast::get_lowest_layer(stream).expires_after(write_timeout);
        co_await net::async_write(stream, net::buffer(body.data(), sent), use_tuple);
    }
    beast::get_lowest_layer(stream).close();
}

net::awaitable<void> serve(std::shared_ptr<connection> conn) {
    auto& stream = conn->stream;
    auto& sim = conn->sim;
    beast::get_lowest_layer(stream).expires_after(handshake_timeout);
    if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple); ec)
        co_return;

    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(header_limit);
        parser.body_limit(body_limit);
        beast::get_lowest_layer(stream).expires_after(idle_timeout);
        if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple); ec)
            co_return; // closed by the peer, timed out, unparsable or closed by stop()
        const request req = parser.release();
        const classified_request what = classify(req);

        std::optional<fault> f = sim.admit(req, what);
        response res;
        if (what.where == route::admin) {
            res = co_await sim.admin_answer(req, what);
        } else if (f) {
            switch (f->what) {
            case fault::kind::delay: {
                conn->timer.expires_after(f->delay);
                if (auto [ec] = co_await conn->timer.async_wait(use_tuple); ec)
                    co_return;
                res = sim.answer(req, what);
                break;
            }
            case fault::kind::hang:
                co_await wait_for_close(stream);
                co_return;
            case fault::kind::close_at_once:
                beast::get_lowest_layer(stream).close();
                co_return;
            case fault::kind::cut_mid_answer:
                co_await cut_mid_answer(stream, sim.answer(req, what));
                co_return;
            case fault::kind::expired_token:
                res = sim.json_answer(
                    http::status::ok,
                    json::object{{"token", sim.make_jwt(what.user, "zak", default_zak_ttl, "",
                                                        -std::int64_t{default_zak_ttl} - 3600)}},
                    req);
                break;
            case fault::kind::server_error:
            case fault::kind::rate_limited:
            case fault::kind::not_json:
                res = sim.fault_answer(*f, req);
                break;
            }
        } else {
            res = sim.answer(req, what);
        }

        beast::get_lowest_layer(stream).expires_after(write_timeout);
        if (auto [ec, n] = co_await http::async_write(stream, res, use_tuple); ec)
            co_return;
        if (res.need_eof())
            break;
    }
    beast::get_lowest_layer(stream).expires_after(shutdown_timeout);
    co_await stream.async_shutdown(use_tuple);
    beast::get_lowest_layer(stream).close();
}

net::awaitable<void> accept_loop(server& sim) {
    for (;;) {
        auto [ec, socket] = co_await sim.acceptor.async_accept(net::make_strand(sim.ioc), use_tuple);
        if (ec == net::error::operation_aborted || !sim.acceptor.is_open())
            break;
        if (ec) {
            // Out of descriptors or a similar passing trouble: do not spin.
            net::steady_timer pause(sim.acceptor.get_executor(), 50ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (auto conn = sim.add_connection(std::move(socket)))
            net::co_spawn(conn->stream.get_executor(), serve(conn), report_exception);
    }
    std::lock_guard lock(sim.mutex);
    sim.accepting = false;
    sim.drained.notify_all();
}

std::optional<fault> take_fault(std::deque<fault>& faults) {
    if (faults.empty())
        return std::nullopt;
    fault f = faults.front();
    if (faults.front().times > 0 && --faults.front().times == 0)
        faults.pop_front();
    return f;
}

json::value zoom_error(int code, std::string_view message) {
    return json::object{{"code", code}, {"message", message}};
}

json::value validation_error(std::string_view field, std::string_view message) {
    return json::object{{"code", 300},
                        {"message", "Validation Failed."},
                        {"errors", json::array{json::object{{"field", field}, {"message", message}}}}};
}

std::optional<std::uint32_t> parse_ttl(std::string_view text) {
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value < 1 || value > max_ttl)
        return std::nullopt;
    return value;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Set-up and shut-down.

void server::make_certificates() {
    if (opts.cert_dir.empty()) {
        std::string pattern = (fs::temp_directory_path() / "zoom-sim-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("cannot create a temporary directory for certificates");
        opts.cert_dir = pattern;
        owns_cert_dir = true;
    }
    const fs::path dir(opts.cert_dir);
    fs::create_directories(dir);
    const fs::path ca_cert = dir / "ca.pem";
    const fs::path ca_key = dir / "ca-key.pem";

    std::unique_ptr<test_ca> ca;
    if (fs::exists(ca_cert) && fs::exists(ca_key)) {
        ca = std::make_unique<test_ca>(pem_pair{read_file(ca_cert), read_file(ca_key)});
    } else {
        ca = std::make_unique<test_ca>("zoom-sim CA");
        write_file_atomically(ca_key, ca->key_pem(), true);
        write_file_atomically(ca_cert, ca->cert_pem(), false);
    }

    std::vector<std::string> dns_names{"localhost"};
    dns_names.insert(dns_names.end(), opts.hostnames.begin(), opts.hostnames.end());
    const std::vector<std::string> ip_addresses{"127.0.0.1", "::1"};
    pem_pair server;
    switch (opts.identity) {
    case tls_identity::trusted:
        server = ca->issue("localhost", dns_names, ip_addresses);
        break;
    case tls_identity::wrong_host:
        server = ca->issue("not-zoom.invalid", {"not-zoom.invalid"}, {});
        break;
    case tls_identity::untrusted_ca:
        server = test_ca("zoom-sim untrusted CA").issue("localhost", dns_names, ip_addresses);
        break;
    }
    write_file_atomically(dir / "cert.pem", server.cert, false);
    write_file_atomically(dir / "key.pem", server.key, true);

    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    tls.use_certificate_chain(net::buffer(server.cert));
    tls.use_private_key(net::buffer(server.key), ssl::context::pem);
}

void server::bind() {
    beast::error_code ec;
    const auto address = net::ip::make_address(opts.address, ec);
    if (ec)
        throw std::runtime_error("zoom-sim: bad address " + opts.address + ": " + ec.message());
    const tcp::endpoint endpoint(address, opts.port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec)
        acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor.bind(endpoint, ec);
    if (!ec)
        acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("zoom-sim: cannot listen on " + opts.address + ":" +
                                 std::to_string(opts.port) + ": " + ec.message());
    opts.port = acceptor.local_endpoint().port();
}

void server::start() {
    accepting = true;
    net::co_spawn(acceptor.get_executor(), accept_loop(*this), report_exception);
    const unsigned count = std::max(1u, opts.threads);
    threads.reserve(count);
    for (unsigned i = 0; i < count; ++i)
        threads.emplace_back([this] {
            try {
                ioc.run();
            } catch (...) {
                report_exception(std::current_exception());
            }
        });
}

void server::stop() {
    std::lock_guard stop_lock(stop_mutex);
    if (stopped)
        return;
    stopped = true;

    net::post(acceptor.get_executor(), [this] {
        beast::error_code ignored;
        acceptor.close(ignored);
    });
    std::vector<std::shared_ptr<connection>> open;
    {
        std::lock_guard lock(mutex);
        stopping = true;
        for (auto& [id, weak] : connections)
            if (auto conn = weak.lock())
                open.push_back(std::move(conn));
    }
    // Outside the lock: the last reference to a connection may be dropped here, and its destructor
    // takes the lock.
    for (auto& conn : open)
        net::post(conn->stream.get_executor(), [conn] { conn->close(); });
    open.clear();
    {
        // Let the connections see their sockets closed and end; whatever is still left after the
        // grace period is destroyed with the io_context.
        std::unique_lock lock(mutex);
        drained.wait_for(lock, stop_grace, [this] { return open_connections == 0 && !accepting; });
    }
    ioc.stop();
    for (auto& t : threads)
        if (t.joinable())
            t.join();
}

std::shared_ptr<connection> server::add_connection(tcp::socket socket) {
    std::uint64_t id = 0;
    {
        std::lock_guard lock(mutex);
        if (stopping)
            return nullptr;
        id = ++next_connection_id;
        ++connections_accepted;
        ++open_connections;
    }
    auto conn = std::make_shared<connection>(*this, id, std::move(socket));
    std::lock_guard lock(mutex);
    connections.emplace(id, conn);
    return conn;
}

void server::connection_closed(std::uint64_t id) {
    std::lock_guard lock(mutex);
    connections.erase(id);
    --open_connections;
    drained.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Requests.

std::optional<fault> server::admit(const request& req, const classified_request& what) {
    std::lock_guard lock(mutex);
    received_targets.emplace_back(req.target());
    if (received_targets.size() > max_received_targets)
        received_targets.pop_front();

    std::optional<fault> f;
    switch (what.where) {
    case route::user_token: {
        ++token_calls_total;
        ++token_calls_by_user[what.user];
        token_call_log.push_back({what.user, std::chrono::steady_clock::now(),
                                  std::string(req["traceparent"]), std::string(req["tracestate"])});
        if (token_call_log.size() > max_received_targets)
            token_call_log.pop_front();
        if (auto it = user_faults.find(what.user); it != user_faults.end()) {
            f = take_fault(it->second);
            if (it->second.empty())
                user_faults.erase(it);
        }
        break;
    }
    case route::oauth:
        ++oauth_calls;
        f = take_fault(oauth_faults);
        break;
    case route::admin:
        return std::nullopt; // not Zoom's API: no fault applies
    case route::unknown:
        break;
    }
    if (!f)
        f = take_fault(global_faults);
    return f;
}

response server::json_answer(http::status status, const json::value& body, const request& req) {
    response res{status, req.version()};
    res.set(http::field::server, "zoom-sim");
    res.set(http::field::content_type, "application/json");
    res.set("x-zm-trackingid", "v=2.0;clid=sim;rid=" + std::to_string(++tracking_counter));
    res.keep_alive(req.keep_alive());
    res.body() = json::serialize(body);
    res.prepare_payload();
    return res;
}

response server::answer(const request& req, const classified_request& what) {
    switch (what.where) {
    case route::oauth:
        if (req.method() != http::verb::post)
            return json_answer(http::status::method_not_allowed, zoom_error(405, "Method Not Allowed."), req);
        return oauth_answer(req);
    case route::user_token:
        if (req.method() != http::verb::get)
            return json_answer(http::status::method_not_allowed, zoom_error(405, "Method Not Allowed."), req);
        return user_token_answer(req, what.user);
    case route::admin:
    case route::unknown:
        break;
    }
    return json_answer(http::status::not_found, zoom_error(404, "No such API endpoint."), req);
}

std::pair<std::string, std::string> server::apply_admin(admin_action action, const std::string& user) {
    {
        std::lock_guard lock(mutex);
        const auto who = event_user_of(user);
        switch (action) {
        case admin_action::deactivate:
            deactivated_users.insert(user_key(user));
            deactivated_users.insert(user_key(who.id));
            deactivated_users.insert(user_key(who.email));
            break;
        case admin_action::activate:
            deactivated_users.erase(user_key(user));
            deactivated_users.erase(user_key(who.id));
            deactivated_users.erase(user_key(who.email));
            break;
        case admin_action::deauthorize:
            access_tokens.clear();
            app_deauthorized = true;
            break;
        case admin_action::authorize: // answered by admin_answer itself
        case admin_action::sign_out:
        case admin_action::set_webhook:
        case admin_action::counters:
        case admin_action::none:
            break;
        }
    }
    return event_for(action, user, opts);
}

std::pair<std::string, std::string> server::webhook() const {
    std::lock_guard lock(mutex);
    return {opts.webhook_url, opts.webhook_secret};
}

bool server::user_exists_locked(const std::string& user) const {
    return !user.starts_with("unknown") && !removed_users.contains(user);
}

response server::webhook_answer(const request& req) {
    boost::system::error_code ec;
    const auto body = json::parse(req.body(), ec);
    const auto* url = !ec && body.is_object() ? body.as_object().if_contains("url") : nullptr;
    if (url == nullptr || !url->is_string())
        return json_answer(http::status::bad_request,
                           zoom_error(300, "The body must be {\"url\": \"http://host:port/path\"}."), req);
    const std::string text(url->as_string());
    auto parsed = urls::parse_uri(text);
    if (!parsed || parsed->scheme() != "http" || parsed->host().empty())
        return json_answer(http::status::bad_request,
                           zoom_error(300, "The webhook URL must be http://host[:port]/path."), req);
    std::lock_guard lock(mutex);
    if (opts.webhook_secret.empty())
        return json_answer(http::status::conflict,
                           zoom_error(300, "No Secret Token to sign events with: start zoom-sim with "
                                           "--webhook-secret-file or $ZOOM_WEBHOOK_SECRET_TOKEN."),
                           req);
    opts.webhook_url = text;
    return json_answer(http::status::ok, json::object{{"webhook_url", text}}, req);
}

response server::counters_answer(const request& req) {
    auto target = urls::parse_origin_form(req.target());
    const auto user = find_param(target->params(), "user");
    std::lock_guard lock(mutex);
    json::object out{{"oauth_calls", oauth_calls}, {"token_calls", token_calls_total}};
    if (user) {
        auto it = token_calls_by_user.find(*user);
        out["user_token_calls"] = it == token_calls_by_user.end() ? 0 : it->second;
    }
    return json_answer(http::status::ok, out, req);
}

net::awaitable<response> server::admin_answer(const request& req, const classified_request& what) {
    if (what.action == admin_action::none)
        co_return json_answer(http::status::not_found,
                              zoom_error(404, "No such admin call. There are POST "
                                              "/admin/users/{userId}/{deactivate|activate|sign_out}, POST "
                                              "/admin/app/deauthorize, POST /admin/app/authorize, POST "
                                              "/admin/webhook and GET /admin/counters."),
                              req);
    const auto allowed = what.action == admin_action::counters ? http::verb::get : http::verb::post;
    if (req.method() != allowed) {
        auto res = json_answer(http::status::method_not_allowed, zoom_error(405, "Method Not Allowed."), req);
        res.set(http::field::allow, allowed == http::verb::get ? "GET" : "POST");
        co_return res;
    }
    if (what.action == admin_action::counters)
        co_return counters_answer(req);
    if (what.action == admin_action::set_webhook)
        co_return webhook_answer(req);
    if (what.action == admin_action::authorize) {
        // Installed again: OAuth answers again. Zoom sends no event for it.
        {
            std::lock_guard lock(mutex);
            app_deauthorized = false;
        }
        co_return json_answer(http::status::ok, json::object{{"authorized", true}}, req);
    }
    if (what.action != admin_action::deauthorize) {
        std::unique_lock lock(mutex);
        if (!user_exists_locked(what.user)) {
            lock.unlock();
            co_return json_answer(http::status::not_found,
                                  zoom_error(1001, "User does not exist: " + what.user + "."), req);
        }
    }
    auto [name, body] = apply_admin(what.action, what.user);
    auto [url, secret_token] = webhook();
    json::object answer{{"event", name}};
    if (url.empty()) {
        answer["posted"] = false;
        answer["error"] = "no webhook URL configured (--webhook-url)";
        co_return json_answer(http::status::ok, answer, req);
    }
    const auto posted_at = std::chrono::steady_clock::now();
    const auto delivered = co_await post_event(url, secret_token, std::move(body));
    const auto took = std::chrono::steady_clock::now() - posted_at;
    answer["posted"] = delivered.status != 0;
    if (delivered.status == 0) {
        answer["error"] = delivered.error;
        co_return json_answer(http::status::bad_gateway, answer, req);
    }
    // The webhook's own status, so that `curl -f` fails when the broker refused the event.
    answer["status"] = delivered.status;
    answer["answer"] = delivered.body;
    // From the connection to the webhook's last byte: for a broker, the time its replicas took to
    // forget (bench/webhook.sh).
    answer["took_us"] = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    auto res = json_answer(http::status::ok, answer, req);
    res.result(static_cast<unsigned>(delivered.status));
    co_return res;
}

response server::fault_answer(const fault& f, const request& req) {
    switch (f.what) {
    case fault::kind::rate_limited: {
        auto res =
            json_answer(http::status::too_many_requests,
                        zoom_error(429, "You have reached the maximum per-second rate limit for this API. "
                                        "Try again later."),
                        req);
        res.set("X-RateLimit-Category", "Light");
        res.set("X-RateLimit-Type", "QPS");
        res.set("X-RateLimit-Limit", "30");
        res.set("X-RateLimit-Remaining", "0");
        if (!f.retry_after.empty())
            res.set(http::field::retry_after, f.retry_after);
        return res;
    }
    case fault::kind::not_json: {
        auto res = json_answer(http::status::ok, json::object{}, req);
        res.body() = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        res.prepare_payload();
        return res;
    }
    default: {
        const auto status = http::int_to_status(f.status);
        const std::string_view reason = http::obsolete_reason(status);
        auto res = json_answer(
            status, zoom_error(static_cast<int>(f.status), reason.empty() ? "Error" : reason), req);
        res.result(f.status); // keeps a status Beast has no name for
        return res;
    }
    }
}

response server::oauth_answer(const request& req) {
    auto invalid = [&](std::string_view reason, std::string_view error) {
        return json_answer(http::status::bad_request, json::object{{"reason", reason}, {"error", error}},
                           req);
    };

    const std::string_view authorization = req[http::field::authorization];
    std::optional<std::string> credentials;
    if (iequals_prefix(authorization, "Basic "))
        credentials = base64_decode(authorization.substr(6));
    const std::string expected = opts.client_id + ":" + opts.client_secret;
    if (!credentials || *credentials != expected)
        return invalid("Invalid client_id or client_secret", "invalid_client");
    {
        // A deauthorized app's credentials no longer get tokens (a fair stand-in for what Zoom does).
        std::lock_guard lock(mutex);
        if (app_deauthorized)
            return invalid("Invalid client_id or client_secret", "invalid_client");
    }

    auto target = urls::parse_origin_form(req.target());
    auto body = urls::parse_query(req.body());
    if (!target || !body)
        return invalid("Invalid request", "invalid_request");
    urls::encoding_opts form;
    form.space_as_plus = true;
    const urls::params_view query = target->params(form);
    // (Boost 1.81 does not export params_view(params_view, encoding_opts): parse the body again.)
    const urls::params_view fields(req.body(), form);
    auto param = [&](std::string_view key) {
        auto value = find_param(fields, key);
        return value ? value : find_param(query, key);
    };

    if (param("grant_type") != "account_credentials")
        return invalid("Unsupported grant type", "unsupported_grant_type");
    if (param("account_id") != opts.account_id)
        return invalid("Invalid account_id", "invalid_request");

    std::string token = base64url(random_bytes(32));
    const auto ttl = opts.access_token_ttl;
    {
        std::lock_guard lock(mutex);
        const auto now = std::chrono::steady_clock::now();
        if (access_tokens.size() >= max_remembered_access_tokens)
            std::erase_if(access_tokens, [&](const auto& entry) { return entry.second <= now; });
        access_tokens.emplace(token, now + ttl);
        if (issued_access_tokens.size() < max_remembered_access_tokens)
            issued_access_tokens.push_back(token);
    }
    return json_answer(http::status::ok,
                       json::object{{"access_token", token},
                                    {"token_type", "bearer"},
                                    {"expires_in", ttl.count()},
                                    {"scope", "user:read:token:admin"},
                                    {"api_url", "https://api.zoom.us"}},
                       req);
}

response server::user_token_answer(const request& req, const std::string& user) {
    const std::string_view authorization = req[http::field::authorization];
    const std::string_view bearer = iequals_prefix(authorization, "Bearer ") ? authorization.substr(7) : "";
    bool google_login = false;
    std::optional<std::uint32_t> zak_ttl;
    bool user_exists = true;
    {
        std::lock_guard lock(mutex);
        auto it = access_tokens.find(std::string(bearer));
        if (bearer.empty() || it == access_tokens.end())
            return json_answer(http::status::unauthorized, zoom_error(124, "Invalid access token."), req);
        if (it->second <= std::chrono::steady_clock::now())
            return json_answer(http::status::unauthorized, zoom_error(124, "Access token is expired."), req);
        user_exists = user_exists_locked(user) && !deactivated_users.contains(user_key(user));
        if (auto u = users.find(user); u != users.end()) {
            google_login = u->second.google_login;
            zak_ttl = u->second.zak_ttl;
        }
    }

    auto target = urls::parse_origin_form(req.target());
    const urls::params_view query = target->params();
    const std::string type = find_param(query, "type").value_or("token");
    if (type != "zak" && type != "token" && type != "onbehalf")
        return json_answer(http::status::bad_request, zoom_error(300, "Invalid type"), req);
    std::optional<std::uint32_t> ttl;
    if (auto text = find_param(query, "ttl")) {
        ttl = parse_ttl(*text);
        if (!ttl)
            return json_answer(http::status::bad_request,
                               validation_error("ttl", "ttl must be a whole number from 1 to 31536000."),
                               req);
    }
    if (!user_exists)
        return json_answer(http::status::not_found, zoom_error(1001, "User does not exist: " + user + "."),
                           req);

    if (type == "token" && google_login)
        return json_answer(http::status::ok, json::object{{"token", nullptr}}, req);
    std::uint32_t lifetime = token_type_lifetime;
    if (type == "zak")
        lifetime = ttl.value_or(zak_ttl.value_or(default_zak_ttl));
    else if (type == "onbehalf")
        lifetime = ttl.value_or(default_onbehalf_ttl);
    const std::string meeting_id = find_param(query, "meeting_id").value_or("");
    return json_answer(http::status::ok, json::object{{"token", make_jwt(user, type, lifetime, meeting_id)}},
                       req);
}

std::string server::make_jwt(const std::string& user, std::string_view type, std::uint32_t ttl,
                             const std::string& meeting_id, std::int64_t issued_shift) {
    const std::int64_t now = unix_now() + issued_shift;
    json::object payload{
        {"aud", "clientsm"},      {"uid", user}, {"iss", "web"},       {"sk", "0"},        {"sty", 100},
        {"wcd", "aw1"},           {"clt", 0},    {"mnum", meeting_id}, {"exp", now + ttl}, {"iat", now},
        {"aid", opts.account_id}, {"cid", ""}};
    if (type == "onbehalf")
        payload["jti"] = base64url(random_bytes(16));
    if (opts.token_padding > 0)
        payload["pad"] = std::string(opts.token_padding, 'x');
    const json::object header{{"typ", "JWT"}, {"alg", "HS256"}};
    std::string signing_input =
        base64url(json::serialize(header)) + "." + base64url(json::serialize(payload));
    const std::string signature = base64url(hmac_sha256(hmac_key, signing_input));
    return signing_input + "." + signature;
}

// ---------------------------------------------------------------------------------------------
// The public face.

struct simulator::impl {
    explicit impl(options opts) : srv(std::move(opts)) {}
    server srv;
};

simulator::simulator(options opts) : impl_(std::make_unique<impl>(std::move(opts))) {
    try {
        impl_->srv.make_certificates();
        impl_->srv.bind();
    } catch (const std::exception& e) {
        if (impl_->srv.owns_cert_dir) {
            std::error_code ignored;
            fs::remove_all(impl_->srv.opts.cert_dir, ignored);
        }
        throw std::runtime_error(e.what());
    }
    impl_->srv.start();
}

simulator::~simulator() {
    stop();
    if (impl_->srv.owns_cert_dir) {
        std::error_code ignored;
        fs::remove_all(impl_->srv.opts.cert_dir, ignored);
    }
}

std::uint16_t simulator::port() const {
    return impl_->srv.opts.port;
}
std::string simulator::base_url() const {
    return "https://localhost:" + std::to_string(port()) + "/v2";
}
std::string simulator::oauth_url() const {
    return "https://localhost:" + std::to_string(port()) + "/oauth/token";
}
std::string simulator::ca_file() const {
    return (fs::path(impl_->srv.opts.cert_dir) / "ca.pem").string();
}
const options& simulator::settings() const {
    return impl_->srv.opts;
}

void simulator::stop() {
    impl_->srv.stop();
}

void simulator::add_user(const std::string& id, user_options u) {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.removed_users.erase(id);
    impl_->srv.users[id] = u;
}

void simulator::remove_user(const std::string& id) {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.users.erase(id);
    impl_->srv.removed_users.insert(id);
}

void simulator::inject(fault f, std::optional<std::string> user) {
    if (f.times == 0)
        return;
    std::lock_guard lock(impl_->srv.mutex);
    if (user)
        impl_->srv.user_faults[*user].push_back(std::move(f));
    else
        impl_->srv.global_faults.push_back(std::move(f));
}

void simulator::inject_oauth(fault f) {
    if (f.times == 0)
        return;
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.oauth_faults.push_back(std::move(f));
}

void simulator::clear_faults() {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.global_faults.clear();
    impl_->srv.oauth_faults.clear();
    impl_->srv.user_faults.clear();
}

void simulator::revoke_access_tokens() {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.access_tokens.clear();
}

void simulator::accept_access_token(const std::string& token, std::chrono::seconds ttl) {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.access_tokens.insert_or_assign(token, std::chrono::steady_clock::now() + ttl);
}

void simulator::set_webhook(const std::string& url, const std::string& secret_token) {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.opts.webhook_url = url;
    impl_->srv.opts.webhook_secret = secret_token;
}

namespace {

simulator::event_delivery deliver(server& srv, admin_action action, const std::string& user) {
    auto [name, body] = srv.apply_admin(action, user);
    auto [url, secret_token] = srv.webhook();
    if (url.empty())
        return {0, {}, "no webhook URL configured"};
    auto done = net::co_spawn(srv.ioc, post_event(url, secret_token, std::move(body)), net::use_future);
    if (done.wait_for(webhook_timeout + 5s) != std::future_status::ready)
        return {0, {}, "the simulator is not running"};
    return done.get();
}

} // namespace

simulator::event_delivery simulator::deactivate_user(const std::string& id) {
    return deliver(impl_->srv, admin_action::deactivate, id);
}

simulator::event_delivery simulator::activate_user(const std::string& id) {
    return deliver(impl_->srv, admin_action::activate, id);
}

simulator::event_delivery simulator::sign_out_user(const std::string& id) {
    return deliver(impl_->srv, admin_action::sign_out, id);
}

simulator::event_delivery simulator::deauthorize_app() {
    return deliver(impl_->srv, admin_action::deauthorize, {});
}

std::uint64_t simulator::token_calls(const std::string& user) const {
    std::lock_guard lock(impl_->srv.mutex);
    auto it = impl_->srv.token_calls_by_user.find(user);
    return it == impl_->srv.token_calls_by_user.end() ? 0 : it->second;
}

std::uint64_t simulator::token_calls() const {
    std::lock_guard lock(impl_->srv.mutex);
    return impl_->srv.token_calls_total;
}

std::vector<std::string> simulator::issued_access_tokens() const {
    std::lock_guard lock(impl_->srv.mutex);
    return impl_->srv.issued_access_tokens;
}

std::uint64_t simulator::oauth_calls() const {
    std::lock_guard lock(impl_->srv.mutex);
    return impl_->srv.oauth_calls;
}

std::uint64_t simulator::connections_accepted() const {
    std::lock_guard lock(impl_->srv.mutex);
    return impl_->srv.connections_accepted;
}

std::uint64_t simulator::open_connections() const {
    std::lock_guard lock(impl_->srv.mutex);
    return impl_->srv.open_connections;
}

std::vector<std::string> simulator::received_targets() const {
    std::lock_guard lock(impl_->srv.mutex);
    return {impl_->srv.received_targets.begin(), impl_->srv.received_targets.end()};
}

std::vector<simulator::token_call> simulator::token_call_log() const {
    std::lock_guard lock(impl_->srv.mutex);
    return {impl_->srv.token_call_log.begin(), impl_->srv.token_call_log.end()};
}

void simulator::reset_counters() {
    std::lock_guard lock(impl_->srv.mutex);
    impl_->srv.token_calls_by_user.clear();
    impl_->srv.token_calls_total = 0;
    impl_->srv.oauth_calls = 0;
    impl_->srv.connections_accepted = 0;
    impl_->srv.received_targets.clear();
    impl_->srv.token_call_log.clear();
}

} // namespace zoom_sim
