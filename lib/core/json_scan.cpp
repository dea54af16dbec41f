#include "core/json_scan.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <set>

namespace token_broker {
namespace {

namespace json = boost::json;

// Follows a parse (a boost::json::basic_parser handler) to keep the path to the value being read and
// the names seen in each object under way, and stops at the first name seen twice.
class repeat_finder {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    using error_code = boost::system::error_code;
    using string_view = json::string_view;

    std::optional<std::vector<json_step>> repeated;

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_array_begin(error_code&) {
        frames_.push_back(frame{false, {}, {}, 0});
        return true;
    }
    bool on_array_end(std::size_t, error_code&) {
        frames_.pop_back();
        return value_done();
    }
    bool on_object_begin(error_code&) {
        frames_.push_back(frame{true, {}, {}, 0});
        return true;
    }
    bool on_object_end(std::size_t, error_code&) {
        frames_.pop_back();
        return value_done();
    }
    bool on_string_part(string_view, std::size_t, error_code&) { return true; }
    bool on_string(string_view, std::size_t, error_code&) { return value_done(); }
    bool on_key_part(string_view s, std::size_t, error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(string_view s, std::size_t, error_code& ec) {
        key_.append(s.data(), s.size());
        frame& f = frames_.back();
        const bool fresh = f.keys.insert(key_).second;
        f.key = std::move(key_);
        key_.clear();
        if (fresh)
            return true;
        repeated = path();
        ec = json::error::syntax;
        return false;
    }
    bool on_number_part(string_view, error_code&) { return true; }
    bool on_int64(std::int64_t, string_view, error_code&) { return value_done(); }
    bool on_uint64(std::uint64_t, string_view, error_code&) { return value_done(); }
    bool on_double(double, string_view, error_code&) { return value_done(); }
    bool on_bool(bool, error_code&) { return value_done(); }
    bool on_null(error_code&) { return value_done(); }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }

private:
    struct frame {
        bool is_object;
        std::set<std::string, std::less<>> keys;
        std::string key;   // objects: the current member's name
        std::size_t index; // arrays: the current element's index
    };

    bool value_done() {
        if (!frames_.empty() && !frames_.back().is_object)
            ++frames_.back().index;
        return true;
    }

    std::vector<json_step> path() const {
        std::vector<json_step> p;
        p.reserve(frames_.size());
        for (const frame& f : frames_) {
            if (f.is_object)
                p.emplace_back(f.key);
            else
                p.emplace_back(f.index);
        }
        return p;
    }

    std::vector<frame> frames_;
    std::string key_;
};

} // namespace

json_scan scan_json(std::string_view text) {
    json::basic_parser<repeat_finder> parser{json::parse_options{}};
    json_scan out;
    out.consumed = parser.write_some(false, text.data(), text.size(), out.error);
    out.repeated = std::move(parser.handler().repeated);
    if (out.repeated)
        out.error = {};
    return out;
}

} // namespace token_broker
