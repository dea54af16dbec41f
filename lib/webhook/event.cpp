#include "webhook/event.hpp"

#include "core/user_identity.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>

namespace token_broker::webhook {
namespace {

namespace json = boost::json;

constexpr std::size_t max_plain_token = 256;

// A member that is a string, or a whole number written as one; empty otherwise.
std::string text_of(const json::object& o, std::string_view name) {
    const json::value* v = o.if_contains(name);
    if (!v)
        return {};
    if (v->is_string())
        return std::string(v->get_string());
    if (v->is_int64())
        return std::to_string(v->get_int64());
    if (v->is_uint64())
        return std::to_string(v->get_uint64());
    return {};
}

const json::object* object_of(const json::object& o, std::string_view name) {
    const json::value* v = o.if_contains(name);
    return v && v->is_object() ? &v->get_object() : nullptr;
}

void add_user(std::vector<std::string>& users, std::string id) {
    if (!id.empty() && std::find(users.begin(), users.end(), id) == users.end())
        users.push_back(std::move(id));
}

// payload.object's id and email, and for user.updated the old email too.
void collect_users(event& e, const json::object& payload) {
    const json::object* object = object_of(payload, "object");
    if (object) {
        add_user(e.users, text_of(*object, "id"));
        add_user(e.users, user_identity(text_of(*object, "email")));
    }
    if (const json::object* old = object_of(payload, "old_object"))
        add_user(e.users, user_identity(text_of(*old, "email")));
}

bool email_changes(const json::object& payload) {
    const json::object* object = object_of(payload, "object");
    const json::object* old = object_of(payload, "old_object");
    if (!object || !old || !old->contains("email"))
        return false;
    return text_of(*old, "email") != text_of(*object, "email");
}

constexpr std::array revoking{std::string_view("user.deactivated"), std::string_view("user.deleted"),
                              std::string_view("user.disassociated")};
constexpr std::array signing_out{std::string_view("change_password"),
                                 std::string_view("sign_out_from_all_devices")};

boost::system::result<event, std::string> refused(std::string_view why) {
    return {boost::system::in_place_error, std::string(why)};
}

} // namespace

std::string_view action_name(action a) noexcept {
    switch (a) {
    case action::url_validation:
        return "url_validation";
    case action::evict:
        return "evict";
    case action::revoke:
        return "revoke";
    case action::reinstate:
        return "reinstate";
    case action::deauthorize:
        return "deauthorize";
    case action::ignore:
        return "ignore";
    }
    return "ignore";
}

boost::system::result<event, std::string> parse_event(std::string_view body) {
    boost::system::error_code ec;
    const json::value doc = json::parse(body, ec);
    if (ec)
        return refused("the body is not JSON");
    if (!doc.is_object())
        return refused("the body is not a JSON object");
    const json::object& root = doc.get_object();
    const json::value* name = root.if_contains("event");
    if (!name || !name->is_string())
        return refused("the body has no string `event`");
    const json::object* payload = object_of(root, "payload");
    if (!payload)
        return refused("the body has no object `payload`");

    event e;
    e.name = std::string(name->get_string());
    e.account_id = text_of(*payload, "account_id");

    if (e.name == "endpoint.url_validation") {
        const json::value* token = payload->if_contains("plainToken");
        if (!token || !token->is_string() || token->get_string().empty() ||
            token->get_string().size() > max_plain_token)
            return refused("payload.plainToken must be a string of 1 to 256 characters");
        e.what = action::url_validation;
        e.plain_token = std::string(token->get_string());
        return e;
    }
    if (e.name == "app_deauthorized") {
        e.what = action::deauthorize;
        return e;
    }

    const bool revokes = std::find(revoking.begin(), revoking.end(), e.name) != revoking.end();
    bool evicts = revokes || e.name == "user.signed_out";
    if (e.name == "user.updated") {
        const std::string operation = text_of(*payload, "operation");
        evicts = std::find(signing_out.begin(), signing_out.end(), operation) != signing_out.end() ||
                 email_changes(*payload);
        if (!evicts)
            e.note = "user.updated changes nothing that signs the user out";
    }
    if (e.name == "user.activated") {
        collect_users(e, *payload);
        e.what = action::reinstate;
    } else if (evicts) {
        collect_users(e, *payload);
        e.what = revokes ? action::revoke : action::evict;
    } else if (e.note.empty()) {
        e.note = "not an event the broker acts on";
    }
    if (e.what != action::ignore && e.users.empty()) {
        e.note = "payload.object names no user (no id, no email)";
        e.what = action::ignore;
    }
    return e;
}

} // namespace token_broker::webhook
