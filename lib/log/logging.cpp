#include "log/logging.hpp"

#include "core/json_text.hpp"

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <unistd.h>

namespace token_broker {

buffered_fd_sink::buffered_fd_sink(int fd, std::size_t capacity) : fd_(fd), capacity_(capacity) {
    buffer_.reserve(capacity_);
}

buffered_fd_sink::~buffered_fd_sink() {
    std::lock_guard lock(mutex_);
    write_all();
}

void buffered_fd_sink::sink_it_(const spdlog::details::log_msg& msg) {
    formatted_.clear();
    formatter_->format(msg, formatted_);
    if (buffer_.size() + formatted_.size() > capacity_)
        write_all();
    buffer_.append(formatted_.data(), formatted_.size());
    if (msg.level >= spdlog::level::warn)
        write_all();
}

void buffered_fd_sink::flush_() {
    write_all();
}

void buffered_fd_sink::write_all() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
        auto n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; // stdout is gone: drop the lines rather than block or throw
        done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
}

void text_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    const std::int64_t second = ms / 1000;
    if (second != cached_second_) {
        cached_second_ = second;
        auto end = fmt::format_to_n(prefix_, sizeof prefix_, "{:%Y-%m-%dT%H:%M:%S}.",
                                    fmt::gmtime(static_cast<std::time_t>(second)));
        prefix_size_ = end.size;
    }
    dest.append(prefix_, prefix_ + prefix_size_);
    const auto millis = static_cast<int>(ms % 1000);
    const char tail[] = {static_cast<char>('0' + millis / 100), static_cast<char>('0' + millis / 10 % 10),
                         static_cast<char>('0' + millis % 10), 'Z', ' '};
    dest.append(tail, tail + sizeof tail);
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.push_back(' ');
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> text_formatter::clone() const {
    return std::make_unique<text_formatter>();
}

void json_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const auto since_epoch =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(since_epoch.count() / 1000);
    fmt::format_to(std::back_inserter(dest), R"({{"time":"{:%Y-%m-%dT%H:%M:%S}.{:03}Z","level":")",
                   fmt::gmtime(secs), since_epoch.count() % 1000);
    auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.push_back('"');
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == structured_marker) {
        payload.remove_prefix(1);
        dest.append(payload.data(), payload.data() + payload.size());
    } else {
        static constexpr std::string_view key = R"(,"msg":)";
        dest.append(key.data(), key.data() + key.size());
        append_json_string_to(dest, payload);
    }
    dest.push_back('}');
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> json_formatter::clone() const {
    return std::make_unique<json_formatter>();
}

void set_log_format(spdlog::logger& logger, log_format format) {
    if (format == log_format::json)
        logger.set_formatter(std::make_unique<json_formatter>());
    else
        logger.set_formatter(std::make_unique<text_formatter>());
}

std::shared_ptr<spdlog::logger> make_logger(const log_config& cfg, spdlog::sink_ptr sink) {
    if (!sink)
        sink = std::make_shared<buffered_fd_sink>();
    auto logger = std::make_shared<spdlog::logger>("token-broker", std::move(sink));
    logger->set_level(cfg.level);
    logger->flush_on(spdlog::level::warn);
    set_log_format(*logger, cfg.format);
    return logger;
}

structured_message::structured_message(log_format format, std::string_view event) : format_(format) {
    text_.resize(256);
    reset(event);
}

void structured_message::grow(std::size_t n) {
    text_.resize(std::max(size_ + n, 2 * text_.size()));
}

void structured_message::reset(std::string_view event) {
    size_ = 0;
    if (format_ == log_format::json) {
        text_.clear();
        text_.push_back(structured_marker);
        text_.append(R"(,"msg":)");
        append_json_string(text_, event);
        size_ = text_.size();
    } else {
        std::memcpy(room(event.size()), event.data(), event.size());
        size_ = event.size();
    }
}

structured_message& structured_message::field(std::string_view name, std::string_view value) {
    if (format_ == log_format::json) {
        text_.resize(size_);
        text_.push_back(',');
        append_json_string(text_, name);
        text_.push_back(':');
        append_json_string(text_, value);
        size_ = text_.size();
    } else {
        // Two copies into room already there: this runs for every field of every audit line.
        const std::size_t n = name.size() + value.size() + 2;
        char* p = room(n);
        *p++ = ' ';
        std::memcpy(p, name.data(), name.size());
        p += name.size();
        *p++ = '=';
        std::memcpy(p, value.data(), value.size());
        size_ += n;
    }
    return *this;
}

structured_message& structured_message::field(std::string_view name, long long value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    std::string_view v(digits, static_cast<std::size_t>(end - digits));
    if (format_ == log_format::json) {
        text_.resize(size_);
        text_.push_back(',');
        append_json_string(text_, name);
        text_.push_back(':');
        text_.append(v);
        size_ = text_.size();
    } else {
        const std::size_t n = name.size() + v.size() + 2;
        char* p = room(n);
        *p++ = ' ';
        std::memcpy(p, name.data(), name.size());
        p += name.size();
        *p++ = '=';
        std::memcpy(p, v.data(), v.size());
        size_ += n;
    }
    return *this;
}

} // namespace token_broker
