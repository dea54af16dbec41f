// Test support: the whole broker (application) on a loopback port of its own, in front of a Zoom
// simulator over real TLS, with everything it logs captured.
#pragma once

#include "app/application.hpp"
#include "auth/auth.hpp"
#include "log/logging.hpp"
#include "server_harness.hpp"
#include "zoom_simulator.hpp"

#include <boost/json/parse.hpp>

#include <functional>

namespace token_broker::testing {

// A caller key named `name` whose plain text is `plain`, for the users matching `users`.
inline caller_key key_for(std::string name, std::string_view plain, std::vector<std::string> users) {
    return caller_key{std::move(name), sha256(plain), std::move(users)};
}

// The Authorization header line that presents `key`.
inline std::string bearer(std::string_view key) {
    return "Authorization: Bearer " + std::string(key) + "\r\n";
}

class running_broker {
public:
    explicit running_broker(const std::function<void(config&)>& tweak = {}, zoom_sim::options sim_opts = {})
        : sim(std::move(sim_opts)) {
        cfg.server.port = 0;
        cfg.zoom.api_base_url = sim.base_url();
        cfg.zoom.oauth_token_url = sim.oauth_url();
        cfg.zoom.account_id = sim.settings().account_id;
        cfg.zoom.client_id = sim.settings().client_id;
        cfg.zoom.client_secret = sim.settings().client_secret;
        cfg.zoom.ca_file = sim.ca_file();
        cfg.zoom.request_timeout = std::chrono::milliseconds(2000);
        if (tweak)
            tweak(cfg);
        set_log_format(*log.logger, cfg.log.format);
        app = std::make_unique<application>(cfg, log.logger);
        app->start();
        thread = std::thread([this] { app->run(false); });
    }

    ~running_broker() {
        app->stop();
        thread.join();
    }

    std::uint16_t port() const { return app->port(); }

    // Waits (up to 5 s) until /readyz answers 200; false if it never does.
    bool wait_ready() {
        for (int i = 0; i < 500; ++i) {
            client c(port());
            if (c.get("/readyz").result_int() == 200)
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    zoom_sim::simulator sim;
    captured_log log;
    config cfg;
    std::unique_ptr<application> app;
    std::thread thread;
};

inline boost::json::value json_body(const http::response<http::string_body>& res) {
    return boost::json::parse(res.body());
}

inline std::string error_code_of(const http::response<http::string_body>& res) {
    auto v = boost::json::parse(res.body());
    return std::string(v.at("error").at("code").as_string());
}

} // namespace token_broker::testing
