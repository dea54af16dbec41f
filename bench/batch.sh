#!/usr/bin/env bash
# POST /tokens with 50 cached users under wrk, beside the same 50 users asked one GET at a time on
# kept-alive connections, in the same run, on loopback. The broker gets CPU 0, wrk gets CPU 1, the
# simulator (only asked while warming) CPU 1 as well.
#
#   bench/batch.sh BUILD_DIR [CONNECTIONS...]     (default connections: 1 16 64)
#
# Prints one markdown table row per kind and connection count: requests/s, items/s (users answered
# a second), the time per item (1 / items/s: the broker's time for one user at that rate), p50 and
# p99 of a request. Environment: DURATION (s, default 10), USERS (default 50).
set -euo pipefail

build=${1:?usage: bench/batch.sh BUILD_DIR [CONNECTIONS...]}
shift
conns=("$@")
((${#conns[@]})) || conns=(1 16 64)
duration=${DURATION:-10}
users=${USERS:-50}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18543 broker_port=18180
key=$bench_key

start_sim "$build" "$sim_port" 1

cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port, "threads": 1, "max_connections": 20000 },
  "zoom": $(zoom_block "$sim_port" '"requests_per_second": 1000'),
  "auth": { "keys": [ { "name": "bench", "sha256": "$bench_key_sha", "users": ["*"] } ] },
  "log": { "level": "info", "format": "text" }
}
JSON
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
taskset -c 0 "$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>&1 &
pids+=($!)
wait_ready "$broker_port"

auth="Authorization: Bearer $key"
items=""
for i in $(seq "$users"); do items+="${items:+,}{\"user_id\":\"bench-$i@example.com\"}"; done
body="{\"requests\":[$items]}"
# Warm: one batch fetches every user (a miss each), the second must be all hits.
curl -sf -H "$auth" -H 'Content-Type: application/json' --data-binary "$body" \
    "http://127.0.0.1:$broker_port/tokens" >/dev/null
answer=$(curl -sf -H "$auth" -H 'Content-Type: application/json' --data-binary "$body" \
    "http://127.0.0.1:$broker_port/tokens")
hits=$(grep -o '"cached":true' <<<"$answer" | wc -l)
((hits == users)) || { echo "warming failed: $hits of $users cached" >&2; exit 1; }

cat >"$work/batch.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$work/singles.lua" <<LUA
-- The same users, one GET each, in turn on every connection.
local n = 0
request = function()
    n = n % $users + 1
    return wrk.format("GET", "/token/bench-" .. n .. "@example.com")
end
LUA

to_ms() { # a wrk latency (123.45us, 1.23ms, 1.02s) in milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}

run_wrk() { # name script connections items-per-request url
    local out rps p50 p99 errors items_per_s per_item
    out=$(taskset -c 1 wrk -t1 -c"$3" -d"${duration}s" --latency -H "$auth" -s "$2" "$5" 2>&1)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    items_per_s=$(awk -v r="$rps" -v k="$4" 'BEGIN {printf "%.0f", r * k}')
    per_item=$(awk -v r="$rps" -v k="$4" 'BEGIN {printf "%.2f", 1e6 / (r * k)}')
    printf '| %s | %s | %.0f | %s | %s µs | %s ms | %s ms | %s |\n' "$1" "$3" "$rps" "$items_per_s" "$per_item" \
        "$(to_ms "$p50")" "$(to_ms "$p99")" "${errors:-none}"
}

echo "$users cached users; batch body ${#body} bytes, answer ${#answer} bytes; wrk ${duration}s per run,"
echo "1 wrk thread on CPU 1, the broker (1 server thread, audit line per item) on CPU 0"
echo
echo '| kind | connections | requests/s | items/s | time per item | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
for c in "${conns[@]}"; do
    run_wrk "POST /tokens, $users users" "$work/batch.lua" "$c" "$users" "http://127.0.0.1:$broker_port/tokens"
    run_wrk "GET /token/{userId}, one user each" "$work/singles.lua" "$c" 1 "http://127.0.0.1:$broker_port/"
done
echo
echo "broker audit lines written: $(grep -c ' audit ' "$work/broker.log")"
curl -sf "http://127.0.0.1:$broker_port/metrics" | grep -E '^token_broker_(cache_misses_total|upstream_requests_total)' || true
