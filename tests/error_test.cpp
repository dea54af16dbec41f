#include "core/error.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace token_broker {
namespace {

// The error table of docs/CONTRACT.md section 3: code name to HTTP status.
std::map<std::string, unsigned> contract_error_table() {
    // A path, not std::string + "...": GCC 12 at -O2 reports a false -Warray-bounds in the string
    // concatenation for some lengths of SOURCE_DIR, so whether it fired depended on the clone's folder.
    std::ifstream in(std::filesystem::path(SOURCE_DIR) / "docs/CONTRACT.md");
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    // Rows look like "| 404 | `not_found` | unknown route |". (No std::regex: GCC 12 warns falsely
    // inside it under the sanitizers.)
    std::map<std::string, unsigned> table;
    std::istringstream lines(s);
    for (std::string line; std::getline(lines, line);) {
        if (line.size() < 10 || !line.starts_with("| ") || line.substr(5, 4) != " | `")
            continue;
        const std::string status = line.substr(2, 3);
        if (status.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const auto end = line.find('`', 9);
        if (end == std::string::npos)
            continue;
        table[line.substr(9, end - 9)] = static_cast<unsigned>(std::stoul(status));
    }
    return table;
}

TEST(Error, CodesStartAtOneSoThatNoneIsZero) {
    EXPECT_EQ(static_cast<int>(errc::invalid_request), 1);
}

TEST(Error, EveryCodeHasTheNameAndStatusOfTheContractTable) {
    const auto table = contract_error_table();
    ASSERT_GE(table.size(), 16u) << "the contract's error table was not found";
    std::set<std::string_view> names;
    for (int i = 1; i <= static_cast<int>(last_errc); ++i) {
        const auto code = static_cast<errc>(i);
        const std::string name(code_name(code));
        SCOPED_TRACE(name);
        EXPECT_TRUE(names.insert(code_name(code)).second) << "two codes share a name";
        if (code == errc::internal_error) { // a bug, not in the contract's table
            EXPECT_EQ(http_status(code), 500u);
            continue;
        }
        auto row = table.find(name);
        ASSERT_NE(row, table.end()) << "not in the contract's error table";
        EXPECT_EQ(http_status(code), row->second);
    }
    // And every row of the table is a code of the broker's.
    for (const auto& [name, status] : table)
        EXPECT_TRUE(names.contains(name)) << name << " (" << status << ") has no code";
}

TEST(Error, ResultCarriesTheError) {
    result<int> r = make_error(errc::forbidden, "no");
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error().code, errc::forbidden);
    EXPECT_THROW((void)r.value(), std::runtime_error);
}

} // namespace
} // namespace token_broker
