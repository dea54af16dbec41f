#include "server/session.hpp"

namespace token_broker {
session::session(const server_config& cfg, request_handler& handler, metrics& m, spdlog::logger& log)
    : cfg_(cfg), handler_(handler), metrics_(m), log_(log),
      buffer_(cfg.max_header_bytes + cfg.max_body_bytes + read_chunk) {}

session::step session::parse() {
    if (!reader_) {
        if (buffer_.size() == 0)
            return step::read;
        reader_.emplace(req_, static_cast<std::uint32_t>(cfg_.max_header_bytes), cfg_.max_body_bytes,
                        cfg_.kept_body_path);
        reader_->eager(true);
    }
    for (;;) {
        beast::error_code ec;
        const auto used = reader_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == http::error::need_more)
            return need_more();
        if (ec || reader_->is_done())
            return finish(ec);
        if (used == 0 || buffer_.size() == 0)
            return need_more();
    }
}

session::step session::need_more() {
    if (buffer_.size() >= buffer_.max_size())
        return finish(http::error::buffer_overflow);
    return step::read;
}

session::step session::end_of_input() {
    if (!reader_)
        return step::close;
    beast::error_code ec;
    reader_->put_eof(ec);
    return finish(ec ? ec : beast::error_code(http::error::partial_message));
}

session::step session::finish(beast::error_code ec) {
    req_.received_at = std::chrono::steady_clock::now();
    id_replaced_ = !is_sane_request_id(req_.request_id);
    if (id_replaced_) {
        sent_id_.assign(req_.request_id);
        make_request_id(req_.request_id);
    }
    if (req_.trace.trace_id.empty()) // no valid traceparent, or refused before the header was read
        req_.trace.start_new();
    res_.clear();
    const auto outcome = classify_read(ec, *reader_, cfg_.max_header_bytes, res_);
    reader_.reset();
    if (outcome == read_outcome::drop)
        return step::close;
    refused_ = outcome == read_outcome::refuse;
    return step::answer;
}

void session::fail(const std::exception& e) {
    log_.error("request {} failed unexpectedly: {}", req_.request_id, e.what());
    res_.clear();
    set_error(res_, errc::internal_error, "internal error");
}

bool session::answer() {
    if (refused_)
        return true;
    try {
        return handler_.answer(req_, ctx_, res_);
    } catch (const std::exception& e) {
        fail(e);
        return true;
    }
}

net::awaitable<void> session::complete() {
    try {
        co_await handler_.complete(req_, ctx_, res_);
    } catch (const std::exception& e) {
        fail(e);
    }
}

std::string_view session::output(bool closing) {
    if (closing)
        res_.close = true;
    out_.clear();
    serialize_response(req_, res_, out_);
    return out_;
}

bool session::sent() {
    metrics_.request_answered(res_.counted_as, res_.status);
    if (log_.should_log(spdlog::level::debug))
        log_.debug("access request_id={} trace_id={} method={} target={} status={} duration_us={}",
                   req_.request_id, req_.trace.trace_id, req_.method_name, req_.target, res_.status,
                   std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                         req_.received_at)
                       .count());
    return !res_.close && req_.keep_alive;
}

} // namespace token_broker
