// zoom-sim, the simulator as a program (sim/README.md), as a child process of a test: for the tests
// of the program itself and of broker processes that it sends Zoom's event notifications to through
// its admin calls. Killed at the end if still running.
#pragma once

#include "broker_process.hpp"
#include "test_support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <csignal>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <vector>

extern char** environ;

namespace token_broker::testing {

// zoom-sim run with `args` (the program's path comes first), its stdout on a pipe.
class sim_program {
public:
    explicit sim_program(std::vector<std::string> args) {
        args.insert(args.begin(), ZOOM_SIM_BINARY);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int fds[2];
        if (::pipe(fds) != 0)
            throw std::runtime_error("pipe() failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        const int spawned = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        out_ = fds[0];
        if (spawned != 0)
            throw std::runtime_error("cannot start zoom-sim");
    }
    ~sim_program() {
        if (pid_ > 0) {
            ::kill(pid_, SIGCONT); // a stopped process would not die before it runs again
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
    }
    sim_program(const sim_program&) = delete;
    sim_program& operator=(const sim_program&) = delete;

    // The first line written, or "" when none comes within `limit`.
    std::string first_line(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (line.find('\n') == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{out_, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
                return "";
            char chunk[256];
            const auto n = ::read(out_, chunk, sizeof chunk);
            if (n <= 0)
                return "";
            line.append(chunk, static_cast<std::size_t>(n));
        }
        return line.substr(0, line.find('\n'));
    }

    // The port named by the line "zoom-sim listening on https://localhost:PORT ...", 0 without it.
    std::uint16_t read_port() {
        static constexpr std::string_view prefix = "zoom-sim listening on https://localhost:";
        const std::string line = first_line();
        if (!line.starts_with(prefix))
            return 0;
        return static_cast<std::uint16_t>(std::stoi(line.substr(prefix.size())));
    }

    void signal(int sig) const { ::kill(pid_, sig); }

    // Sends `sig` and returns the exit status, or -1 when it does not exit within `limit`.
    int stop(int sig, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
        ::kill(pid_, sig);
        return wait_for_exit(pid_, limit);
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
};

// One HTTPS request to 127.0.0.1:`port`, the server verified as "localhost" against `ca_file`: the
// answer, or status 0 and the error's text (a refused connection, `limit` passed). Never throws.
inline answer https_request(std::uint16_t port, const std::string& ca_file, boost::beast::http::verb verb,
                            const std::string& target, const std::string& body = "",
                            std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    namespace net = boost::asio;
    namespace http = boost::beast::http;
    const auto started = std::chrono::steady_clock::now();
    try {
        net::io_context ioc;
        net::ssl::context tls(net::ssl::context::tls_client);
        tls.load_verify_file(ca_file);
        tls.set_verify_mode(net::ssl::verify_peer);
        net::ssl::stream<net::ip::tcp::socket> stream(ioc, tls);
        SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
        stream.set_verify_callback(net::ssl::host_name_verification("localhost"));
        stream.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
        const timeval tv{static_cast<time_t>(limit.count() / 1000),
                         static_cast<suseconds_t>((limit.count() % 1000) * 1000)};
        ::setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        stream.handshake(net::ssl::stream_base::client);
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "localhost");
        if (!body.empty())
            req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        http::write(stream, req);
        boost::beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(stream, buffer, res);
        return {static_cast<int>(res.result_int()), res.body(), std::chrono::steady_clock::now() - started};
    } catch (const std::exception& e) {
        return {0, e.what(), std::chrono::steady_clock::now() - started};
    }
}

// zoom-sim on a port of its choosing (--port 0), its certificates and the webhook Secret Token in a
// directory of its own: the Zoom of broker processes, and the sender of Zoom's events to them
// through its admin calls (sim/README.md, "Zoom's event notifications").
class sim_with_events {
public:
    explicit sim_with_events(const std::string& webhook_secret)
        : secret_file_(dir_.file("webhook-secret", webhook_secret)),
          program_({"--port", "0", "--cert-dir", (dir_.path() / "certs").string(), "--webhook-secret-file",
                    secret_file_}),
          port_(program_.read_port()) {
        if (port_ == 0)
            throw std::runtime_error("zoom-sim did not say where it listens");
    }

    std::uint16_t port() const { return port_; }
    std::string ca_file() const { return (dir_.path() / "certs" / "ca.pem").string(); }
    // The "zoom" settings of a broker that calls it.
    zoom_endpoint endpoint() const {
        const std::string base = "https://localhost:" + std::to_string(port_);
        return {base + "/v2", base + "/oauth/token", "sim-account", "sim-client", "sim-secret", ca_file()};
    }

    // An admin call (or any request) on its port.
    answer request(boost::beast::http::verb verb, const std::string& target,
                   const std::string& body = "") const {
        return https_request(port_, ca_file(), verb, target, body);
    }
    answer post(const std::string& target, const std::string& body = "") const {
        return request(boost::beast::http::verb::post, target, body);
    }
    // Points its events at `url` (POST /admin/webhook); the status of that call.
    int send_events_to(const std::string& url) const {
        return post("/admin/webhook", R"({"url":")" + url + R"("})").status;
    }
    // GET /admin/counters: the OAuth calls, and the token calls of `user` (all of them when empty).
    std::uint64_t oauth_calls() const { return counter("/admin/counters", "oauth_calls"); }
    std::uint64_t token_calls(const std::string& user = "") const {
        return user.empty() ? counter("/admin/counters", "token_calls")
                            : counter("/admin/counters?user=" + user, "user_token_calls");
    }

    // SIGSTOP and SIGCONT: a Zoom that accepts connections and answers nothing, then answers again.
    void pause() const { program_.signal(SIGSTOP); }
    void resume() const { program_.signal(SIGCONT); }

private:
    std::uint64_t counter(const std::string& target, const char* name) const {
        const auto a = request(boost::beast::http::verb::get, target);
        if (a.status != 200)
            throw std::runtime_error("GET " + target + " on zoom-sim: " + std::to_string(a.status) + " " +
                                     a.body);
        return boost::json::parse(a.body).as_object().at(name).to_number<std::uint64_t>();
    }

    temp_dir dir_;
    std::string secret_file_;
    sim_program program_;
    std::uint16_t port_ = 0;
};

} // namespace token_broker::testing
