// zoom-sim: the Zoom simulator as a program, for `scripts/dev run`, benchmarks and docker compose.
// Serves until SIGTERM or SIGINT, then exits 0.
#include "zoom_simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>

namespace po = boost::program_options;

int main(int argc, char** argv) {
    zoom_sim::options opts;
    unsigned access_token_ttl = 3600;
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
        "token-padding", po::value(&opts.token_padding)->default_value(0), "bytes of padding in each token");

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

    try {
        // Signals are caught from here on, before any serving thread exists.
        boost::asio::io_context signals_context;
        boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
        signals.async_wait([](const boost::system::error_code&, int) {});

        zoom_sim::simulator sim(opts);
        std::printf("zoom-sim listening on https://localhost:%u (CA: %s)\n",
                    static_cast<unsigned>(sim.port()), sim.ca_file().c_str());
        std::fflush(stdout);
        signals_context.run();
        sim.stop();
    } catch (const std::exception& e) {
        std::cerr << "zoom-sim: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
