// Small helpers shared by the test suites.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace token_broker::testing {

// The whole content of a file; empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The system clock's seconds since 1970, as decimal text (Zoom's x-zm-request-timestamp).
inline std::string unix_seconds_now() {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

// Polls `condition` every 5 ms until it holds (true) or `limit` has passed (false). The limit is an
// upper bound for a loaded machine, never a measure.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= give_up)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// Waits up to `limit` for the child `pid` to exit: its exit status (128 + the signal when a signal
// ended it), and `pid` set to -1; -1 when it is still running.
inline int wait_for_exit(pid_t& pid, std::chrono::milliseconds limit) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        if (pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid) {
            pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (std::chrono::steady_clock::now() >= give_up)
            return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// Lower-case hex of a digest, as caller keys are configured.
inline std::string hex(const std::array<std::uint8_t, 32>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

// A temporary directory of the test's own, removed with everything in it at the end.
class temp_dir {
public:
    temp_dir()
        : path_(std::filesystem::temp_directory_path() /
                ("token-broker-test-" + std::to_string(::getpid()) + "-" + std::to_string(next()++))) {
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes `contents` to `name` inside the directory and returns the file's path.
    std::string file(const std::string& name, std::string_view contents) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary) << contents;
        return p.string();
    }

private:
    static std::atomic<int>& next() {
        static std::atomic<int> n{0};
        return n;
    }
    std::filesystem::path path_;
};

} // namespace token_broker::testing
