// Log sinks and formats (CONTRACT.md sections 1 and 6). Logs go to stdout, as text or as one JSON
// object a line. The stdout sink buffers: it is flushed by flush() (the application calls it a few
// times a second), at once for warnings and above, and when its buffer fills, so that the audit line
// of a cache hit does not cost a write(2) per request.
#pragma once

#include "config/config.hpp"

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace token_broker {

// A sink writing to a file descriptor (stdout by default) through a buffer of `capacity` bytes.
class buffered_fd_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit buffered_fd_sink(int fd = 1, std::size_t capacity = 64 * 1024);
    ~buffered_fd_sink() override;

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override;

private:
    void write_all();
    int fd_;
    std::size_t capacity_;
    std::string buffer_;
    spdlog::memory_buf_t formatted_;
};

// Formats a line as text: "2026-11-29T23:00:00.123Z info message". The timestamp's seconds are
// formatted once a second, so a line costs little more than copying its message.
class text_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;

private:
    std::int64_t cached_second_ = -1;
    char prefix_[32] = {}; // "2026-11-29T23:00:00."
    std::size_t prefix_size_ = 0;
};

// Formats a line as one JSON object: {"time":"...","level":"info","msg":"..."}. A message made by
// `structured_message` below carries its own fields, which become members of the object instead.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;
};

// A logger named "token-broker" writing to `sink` (a buffered stdout sink when null) with the level
// and format of `cfg`. The caller owns it; the library never reaches for a global logger.
std::shared_ptr<spdlog::logger> make_logger(const log_config& cfg, spdlog::sink_ptr sink = nullptr);

// Sets the format of `logger`'s sinks: text or one JSON object a line.
void set_log_format(spdlog::logger& logger, log_format format);

// Builds a log message with named fields, rendered as `event k=v k=v` in text and as members of the
// line's object in JSON. Values are written as given: never pass a secret.
class structured_message {
public:
    structured_message(log_format format, std::string_view event);
    structured_message& field(std::string_view name, std::string_view value);
    structured_message& field(std::string_view name, long long value);
    std::string_view text() const noexcept { return {text_.data(), size_}; }
    // Starts again with another event, keeping the buffer's capacity.
    void reset(std::string_view event);

private:
    // Where `n` more characters go, after the first size_: text_ is kept at least that long (what
    // lies past size_ is scratch), so that a field is copied in without resizing (and zeroing) the
    // string each time, on every audit line.
    char* room(std::size_t n) {
        if (text_.size() - size_ < n)
            grow(n);
        return text_.data() + size_;
    }
    void grow(std::size_t n);

    log_format format_;
    std::string text_;
    std::size_t size_ = 0; // the message: text_'s first size_ characters
};

// Marks a message as carrying JSON members rather than text (see json_formatter).
inline constexpr char structured_marker = '\x1e';

} // namespace token_broker
