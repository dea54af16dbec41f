#include "app/command_line.hpp"

#include "config/config.hpp"

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/variables_map.hpp>
#include <boost/url/parse.hpp>

#include <sstream>

namespace token_broker {

namespace po = boost::program_options;

namespace {

po::options_description option_descriptions() {
    po::options_description options("Options");
    options.add_options()                                                                                //
        ("config", po::value<std::string>()->value_name("FILE"), "the configuration file (JSON)")        //
        ("check-config", "check the configuration (file and environment), print \"config OK\" and exit") //
        ("version", "print the version and exit")                                                        //
        ("help", "print this help and exit")                                                             //
        ("probe", po::value<std::string>()->value_name("URL"),
         "for a container healthcheck: GET URL (http://127.0.0.1:PORT/healthz) within 2 s; exit 0 "
         "when it answers 200, else 1");
    return options;
}

probe_target parse_probe_url(const std::string& text) {
    const auto url = boost::urls::parse_uri(text);
    if (!url || url->scheme_id() != boost::urls::scheme::http || url->encoded_host().empty() ||
        url->has_userinfo() || url->has_fragment() || (url->has_port() && !parse_port_number(url->port())))
        throw command_line_error("--probe: must be an http:// URL such as http://127.0.0.1:8080/healthz");
    probe_target probe;
    probe.host = url->host_address();
    if (url->has_port())
        probe.port = *parse_port_number(url->port());
    probe.target = url->encoded_target();
    // Not insert(0, "/"): GCC 12 at -O3 reports a false -Wrestrict overlap for it (release preset).
    if (probe.target.empty() || probe.target.front() != '/')
        probe.target.insert(probe.target.begin(), '/');
    return probe;
}

} // namespace

command_line parse_command_line(int argc, const char* const argv[]) {
    po::variables_map values;
    try {
        // No guessing: "--conf" must not quietly mean "--config".
        const auto style = po::command_line_style::unix_style ^ po::command_line_style::allow_guessing;
        // An empty positional description makes any positional argument an error, not silently ignored.
        const po::positional_options_description no_positional;
        po::store(po::command_line_parser(argc, argv)
                      .options(option_descriptions())
                      .positional(no_positional)
                      .style(style)
                      .run(),
                  values);
        po::notify(values);
    } catch (const po::error& e) {
        throw command_line_error(e.what());
    }
    command_line result;
    if (values.count("config")) {
        result.config_file = values["config"].as<std::string>();
        if (result.config_file->empty())
            throw command_line_error("--config: the file name is empty");
    }
    result.check_config = values.count("check-config") != 0;
    result.version = values.count("version") != 0;
    result.help = values.count("help") != 0;
    if (values.count("probe"))
        result.probe = parse_probe_url(values["probe"].as<std::string>());
    return result;
}

std::string usage_text() {
    std::ostringstream text;
    text << "Usage: token-broker --config FILE [--check-config]\n"
            "       token-broker --version | --help\n"
            "       token-broker --probe URL\n"
            "\n"
            "Hands Zoom user tokens to internal callers over HTTP. The configuration file and the\n"
            "environment variables that override it are described in config/README.md.\n"
            "\n"
         << option_descriptions();
    return text.str();
}

} // namespace token_broker
