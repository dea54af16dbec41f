#include "server/token_batch.hpp"

#include "core/json_scan.hpp"
#include "server/token_request.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <variant>

namespace token_broker {
namespace {

// A string member's value; an error naming it when it is there but not a string.
result<std::optional<std::string>> string_member(const boost::json::object& item, std::string_view name,
                                                 std::size_t index) {
    const auto* v = item.if_contains(name);
    if (!v)
        return std::optional<std::string>();
    if (!v->is_string())
        return invalid_request(fmt::format("requests item {}: {} must be a string", index, name));
    return std::optional<std::string>(std::string(v->get_string()));
}

// Appends the item to `out`; the error of the whole request when its shape is wrong.
std::optional<broker_error> read_item(const boost::json::value& value, std::size_t index,
                                      std::vector<batch_item>& out) {
    if (!value.is_object())
        return invalid_request(fmt::format("requests item {} is not an object", index));
    const auto& item = value.get_object();
    for (const auto& member : item) {
        const std::string_view key = member.key();
        if (key != "user_id" && key != "type" && key != "ttl" && key != "meeting_id")
            return invalid_request(
                fmt::format("requests item {} has an unknown member {} (only user_id, type, ttl and "
                            "meeting_id are allowed)",
                            index, quoted_for_message(key)));
    }
    auto user_id = string_member(item, "user_id", index);
    if (!user_id)
        return user_id.error();
    if (!*user_id)
        return invalid_request(fmt::format("requests item {} has no user_id", index));
    auto type = string_member(item, "type", index);
    if (!type)
        return type.error();
    auto meeting_id = string_member(item, "meeting_id", index);
    if (!meeting_id)
        return meeting_id.error();

    std::optional<std::string> ttl;
    if (const auto* v = item.if_contains("ttl")) {
        // As the digits a query string would hold: a negative one then fails the ttl rule itself.
        if (v->is_int64())
            ttl = std::to_string(v->get_int64());
        else if (v->is_uint64())
            ttl = std::to_string(v->get_uint64());
        else
            return invalid_request(fmt::format("requests item {}: ttl must be an integer", index));
    }
    out.push_back(make_token_query(std::move(**user_id), *type, ttl, *meeting_id));
    return std::nullopt;
}

// The refusal of a body that names a member twice in one object, at `path` (json_scan.hpp).
broker_error repeated_member(const std::vector<json_step>& path) {
    const auto* name = std::get_if<std::string>(&path.back());
    if (path.size() == 1 && name)
        return invalid_request(
            fmt::format("the body has the member {} more than once", quoted_for_message(*name)));
    const auto* index = std::get_if<std::size_t>(&path[1 % path.size()]);
    if (path.size() == 3 && index && name)
        return invalid_request(fmt::format("requests item {} has the member {} more than once", *index + 1,
                                           quoted_for_message(*name)));
    return invalid_request("the body has a member more than once in one object");
}

} // namespace

result<std::vector<batch_item>> parse_token_batch(std::string_view body) {
    // json::parse would keep one of two equal names silently: the scan finds them first.
    const json_scan scan = scan_json(body);
    if (scan.repeated)
        return repeated_member(*scan.repeated);
    if (!scan.valid(body.size()))
        return invalid_request("the body is not JSON: send {\"requests\": [{\"user_id\": \"...\"}, ...]}");
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(body, ec);
    if (ec)
        return invalid_request("the body is not JSON: send {\"requests\": [{\"user_id\": \"...\"}, ...]}");
    if (!doc.is_object())
        return invalid_request("the body must be a JSON object with a member \"requests\"");
    const auto& top = doc.get_object();
    for (const auto& member : top)
        if (member.key() != "requests")
            return invalid_request(
                fmt::format("the body has an unknown member {} (only \"requests\" is allowed)",
                            quoted_for_message(member.key())));
    const auto* requests = top.if_contains("requests");
    if (!requests || !requests->is_array())
        return invalid_request("\"requests\" must be an array of items");
    const auto& items = requests->get_array();
    if (items.empty() || items.size() > max_batch_items)
        return invalid_request(
            fmt::format("\"requests\" must hold 1 to {} items, not {}", max_batch_items, items.size()));

    std::vector<batch_item> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (auto whole = read_item(items[i], i + 1, out))
            return *whole;
    }
    return out;
}

} // namespace token_broker
