#!/usr/bin/env bash
# A rolling restart with Redis (CONTRACT.md section 7): three brokers share one redis-server; USERS
# users (default 10,000) are fetched once; then, under steady traffic cycling through those users on
# every replica, each replica in turn is stopped (SIGTERM, drain) and started again. Counts the
# Zoom token calls made after the fill: a restarted replica has an empty memory, so every call it
# makes for a user whose token is still valid is one the shared cache failed to save.
#
#   bench/rolling_restart.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: bench/rolling_restart.sh BUILD_DIR}
users=${USERS:-10000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"
declare -A pid

sim_port=18446 redis_port=18380 ports=(18091 18092 18093)
start_redis "$redis_port"
start_sim "$build" "$sim_port"
key=$(openssl rand -hex 32)

start_broker() { # port
    cat >"$work/broker-$1.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $1, "threads": 1, "drain_timeout_ms": 2000 },
  "zoom": $(zoom_block "$sim_port" '"max_connections": 16, "requests_per_second": 100000'),
  "redis": $(redis_block "$redis_port" "$key"),
  "log": { "level": "warn" }
}
JSON
    "$build/service/token-broker" --config "$work/broker-$1.json" >>"$work/broker-$1.log" 2>&1 &
    pid[$1]=$!
    pids+=($!)
    wait_ready "$1" '"redis":"up"'
}
zoom_calls() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_upstream_requests_total\{code="200",endpoint="token"\}/ {n = $2} END {print n + 0}'
}

for p in "${ports[@]}"; do start_broker "$p"; done
# The fill: one round through the users on the first replica (each a Zoom call).
# Rounds of 4 s until every user has been fetched (a round starts again at the first user, whose
# answers are then hits).
filled=0
for _ in $(seq 20); do
    USERS=$users wrk -t1 -c16 -d4s -s "$here/cycle_users.lua" "http://127.0.0.1:${ports[0]}" >/dev/null
    filled=$(zoom_calls "${ports[0]}")
    ((filled >= users)) && break
done
echo "fill: $filled Zoom calls for $users users"

# Steady traffic on every replica while each is restarted in turn.
traffic=()
i=0
for p in "${ports[@]}"; do
    OFFSET=$((i * 3333)) USERS=$users wrk -t1 -c8 -d30s -s "$here/cycle_users.lua" "http://127.0.0.1:$p" \
        >"$work/wrk-$p.txt" 2>&1 &
    traffic+=($!)
    i=$((i + 1))
done
sleep 3
before_restart=0
for p in "${ports[@]}"; do
    calls=$(zoom_calls "$p")
    before_restart=$((before_restart + calls))
    kill -TERM "${pid[$p]}"
    wait "${pid[$p]}" 2>/dev/null || true
    start_broker "$p"
    echo "restarted the replica on $p (it had made $calls Zoom calls)"
    sleep 3
done
sleep 5
after=0
for p in "${ports[@]}"; do after=$((after + $(zoom_calls "$p"))); done
total=$((before_restart + after - filled))
echo "Zoom calls after the fill, during the rolling restart: $total (for $users users whose tokens were all still valid)"
wait "${traffic[@]}" # its 30 s
for p in "${ports[@]}"; do
    requests=$(awk '/requests in/ {print $1}' "$work/wrk-$p.txt")
    echo "traffic on $p: $requests requests; $( (grep -E 'Non-2xx|Socket errors' "$work/wrk-$p.txt" || echo 'no errors') | tr '\n' ' ')"
done
