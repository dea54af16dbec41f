// token-broker: parses the command line, loads the configuration, and runs the application.
// Exit status (CONTRACT.md section 1): 0 clean, 1 runtime failure, 2 bad usage or configuration.
#include "app/application.hpp"
#include "app/command_line.hpp"
#include "app/probe.hpp"
#include "config/config.hpp"
#include "log/logging.hpp"

#include <exception>
#include <iostream>

int main(int argc, char* argv[]) {
    using namespace token_broker;
    try {
        command_line cli;
        try {
            cli = parse_command_line(argc, argv);
        } catch (const command_line_error& e) {
            std::cerr << "token-broker: " << e.what() << "\n\n" << usage_text();
            return 2;
        }
        if (cli.help) {
            std::cout << usage_text();
            return 0;
        }
        if (cli.version) {
            std::cout << "token-broker " TOKEN_BROKER_VERSION "\n";
            return 0;
        }
        if (cli.probe) {
            const probe_result probe = run_probe(*cli.probe);
            if (!probe.healthy)
                std::cerr << "token-broker: probe: " << probe.problem << '\n';
            return probe.healthy ? 0 : 1;
        }
        if (!cli.config_file) {
            std::cerr << "config: --config: required\n";
            return 2;
        }
        config cfg;
        try {
            cfg = load_config(*cli.config_file, process_environment());
        } catch (const config_error& e) {
            std::cerr << e.what() << '\n';
            return 2;
        }
        if (cli.check_config) {
            std::cout << "config OK: " << *cli.config_file << '\n';
            return 0;
        }
        return run_application(cfg, make_logger(cfg.log), std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "token-broker: " << e.what() << '\n';
        return 1;
    }
}
