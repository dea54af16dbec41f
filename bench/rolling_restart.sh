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
work=$(mktemp -d)
declare -A pid
others=()
cleanup() {
    for p in "${pid[@]}" "${others[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

sim_port=18446 redis_port=18380 ports=(18091 18092 18093)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$work" \
    --requirepass bench-redis-password >"$work/redis.log" 2>&1 &
others+=($!)
"$build/sim/zoom-sim" --port "$sim_port" --cert-dir "$work/sim" >"$work/sim.log" 2>&1 &
others+=($!)
for _ in $(seq 50); do [[ -s $work/sim/ca.pem ]] && break; sleep 0.1; done
key=$(openssl rand -hex 32)

start_broker() { # port
    cat >"$work/broker-$1.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $1, "threads": 1, "drain_timeout_ms": 2000 },
  "zoom": {
    "api_base_url": "https://localhost:$sim_port/v2", "oauth_token_url": "https://localhost:$sim_port/oauth/token",
    "account_id": "sim-account", "client_id": "sim-client", "client_secret": "sim-secret",
    "ca_file": "$work/sim/ca.pem", "max_connections": 16, "requests_per_second": 100000
  },
  "redis": { "url": "redis://127.0.0.1:$redis_port", "password": "bench-redis-password", "encryption_key": "$key" },
  "log": { "level": "warn" }
}
JSON
    "$build/service/token-broker" --config "$work/broker-$1.json" >>"$work/broker-$1.log" 2>&1 &
    pid[$1]=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" | grep -q '"redis":"up"' && return; sleep 0.1; done
    echo "broker on $1 did not become ready" >&2
    exit 1
}
zoom_calls() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_upstream_requests_total\{code="200",endpoint="token"\}/ {n = $2} END {print n + 0}'
}

for p in "${ports[@]}"; do start_broker "$p"; done
# The fill: one round through the users on the first replica (each a Zoom call).
USERS=$users wrk -t1 -c16 -d4s -s "$here/cycle_users.lua" "http://127.0.0.1:${ports[0]}" >/dev/null
filled=$(zoom_calls "${ports[0]}")
echo "fill: $filled Zoom calls for $users users"

# Steady traffic on every replica while each is restarted in turn.
i=0
for p in "${ports[@]}"; do
    OFFSET=$((i * 3333)) USERS=$users wrk -t1 -c8 -d30s -s "$here/cycle_users.lua" "http://127.0.0.1:$p" \
        >"$work/wrk-$p.txt" 2>&1 &
    others+=($!)
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
