// Zoom's event notifications (CONTRACT.md section 9; docs/ZOOM-FACTS.md, "Webhooks"), read into
// what the broker does about them. Pure: the body in, a value out. Read leniently, as Zoom's own
// examples do not always match their schema: unknown members are ignored, and an id or account id
// may come as a JSON string or a whole number.
#pragma once

#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace token_broker::webhook {

// What an event asks of the broker.
enum class action {
    url_validation, // endpoint.url_validation: answer with the encrypted plain token
    evict,          // forget the users' tokens (signed out, password changed, email changed)
    revoke,         // forget them and mark them revoked (deactivated, deleted, disassociated)
    reinstate,      // clear the revoked mark (user.activated)
    deauthorize,    // app_deauthorized: drop the access token everywhere
    ignore,         // an event the broker has nothing to do for
};

struct event {
    std::string name; // the `event` member, e.g. "user.deactivated"
    action what = action::ignore;
    std::string account_id; // payload.account_id; empty when absent
    // The users concerned, as the broker's callers may name them: payload.object.id, then each
    // email (payload.object.email and, for user.updated, payload.old_object.email), lower-cased.
    std::vector<std::string> users;
    std::string plain_token; // for url_validation
    // Why an event that would act names nobody, or why it is ignored; empty otherwise.
    std::string note;
};

// The body as received. An error (its message, for the 400 answer and the log) when the body is not
// a JSON object with a string `event` and an object `payload`, or a URL validation whose
// payload.plainToken is not a string of 1 to 256 characters.
boost::system::result<event, std::string> parse_event(std::string_view body);

// The name of an action for logs and metrics: "url_validation", "evict", ...
std::string_view action_name(action a) noexcept;

} // namespace token_broker::webhook
