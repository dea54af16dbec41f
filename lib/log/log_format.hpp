// How log lines are written (CONTRACT.md section 6): as text, or as one JSON object a line.
#pragma once

namespace token_broker {

enum class log_format { text, json };

} // namespace token_broker
