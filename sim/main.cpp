// zoom-sim: the Zoom simulator as a program, for `scripts/dev run`, benchmarks and docker compose.
// Serves until SIGTERM or SIGINT, then exits 0.
#include "zoom_simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

namespace po = boost::program_options;

int main(int argc, char** argv) {
    zoom_sim::options opts;
    unsigned access_token_ttl = 3600;
    std::string webhook_secret_file;
    po::options_description described("zoom-sim: a stand-in for Zoom's token API over TLS");
    described.add_options()("help", "print this help and exit")(
        "address", po::value(&opts.address)->default_value("127.0.0.1"), "address to listen on")(
        "port", po::value(&opts.port)->default_value(8443), "port to listen on (0: any free port)")(
        "cert-dir", po::value(&opts.cert_dir)->required(),
        "directory for ca.pem (kept and reused across restarts), cert.pem and key.pem")(
        "hostname", po::value(&opts.hostnames)->composing(),
        "extra DNS name in the server certificate besides localhost (repeatable)")(
        "threads", po::value(&opts.threads)->default_value(1),
        "threads serving connections")("access-token-ttl", po::value(&access_token_ttl)->default_value(3600),
                                       "seconds an OAuth access token stays valid")(
        "token-padding", po::value(&opts.token_padding)->default_value(0), "bytes of padding in each token")(
        "webhook-url", po::value(&opts.webhook_url),
        "where the admin calls post Zoom's event notifications (http://host:port/path)")(
        "webhook-secret-file", po::value(&webhook_secret_file),
        "file holding the app's Secret Token that events are signed with (else $ZOOM_WEBHOOK_SECRET_TOKEN)");

    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, described), vm);
        if (vm.count("help")) {
            std::cout << described << '\n';
            return 0;
        }
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "zoom-sim: " << e.what() << "\n" << described << '\n';
        return 2;
    }
    opts.access_token_ttl = std::chrono::seconds(access_token_ttl);
    // The Secret Token from a file or the environment, never from the command line (ps shows that).
    if (!webhook_secret_file.empty()) {
        std::ifstream in(webhook_secret_file);
        std::getline(in, opts.webhook_secret);
        if (!in && opts.webhook_secret.empty()) {
            std::cerr << "zoom-sim: cannot read --webhook-secret-file " << webhook_secret_file << '\n';
            return 2;
        }
    } else if (const char* env = std::getenv("ZOOM_WEBHOOK_SECRET_TOKEN")) {
        opts.webhook_secret = env;
    }
    if (!opts.webhook_url.empty() && opts.webhook_secret.empty()) {
        std::cerr << "zoom-sim: --webhook-url needs the Secret Token (--webhook-secret-file or "
                     "$ZOOM_WEBHOOK_SECRET_TOKEN)\n";
        return 2;
    }

    try {
        // Signals are caught from here on, before any serving thread exists.
        boost::asio::io_context signals_context;
        boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
        signals.async_wait([](const boost::system::error_code&, int) {});

        zoom_sim::simulator sim(opts);
        std::printf("zoom-sim listening on https://localhost:%u (CA: %s)\n",
                    static_cast<unsigned>(sim.port()), sim.ca_file().c_str());
        if (!opts.webhook_url.empty())
            std::printf("zoom-sim posts event notifications to %s\n", opts.webhook_url.c_str());
        std::fflush(stdout);
        signals_context.run();
        sim.stop();
    } catch (const std::exception& e) {
        std::cerr << "zoom-sim: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
