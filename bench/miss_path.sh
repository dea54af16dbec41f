#!/usr/bin/env bash
# The cache-miss path: every request a distinct user, so every one is a call to the Zoom simulator
# over TLS. Beside it, wrk straight at the simulator over TLS (with an access token) shows what the
# simulator itself can do on this machine.
#
#   bench/miss_path.sh BUILD_DIR [CONNECTIONS]      (default 64; DURATION in s, default 10)
set -euo pipefail

build=${1:?usage: bench/miss_path.sh BUILD_DIR [CONNECTIONS]}
conns=${2:-64}
duration=${DURATION:-10}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18444 broker_port=18082
start_sim "$build" "$sim_port"

cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port, "threads": 1 },
  "zoom": $(zoom_block "$sim_port" '"max_connections": 16, "requests_per_second": 100000'),
  "cache": { "max_entries": 10000000 },
  "log": { "level": "info" }
}
JSON
"$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>&1 &
pids+=($!)
wait_ready "$broker_port"

summary() { # name, wrk output
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$conns" "$(awk '/Requests\/sec/ {print $2}' <<<"$2")" \
        "$(awk '$1=="50%" {print $2}' <<<"$2")" "$(awk '$1=="99%" {print $2}' <<<"$2")" \
        "$( (grep -E 'Non-2xx|Socket errors' <<<"$2" || echo none) | tr '\n' ' ')"
}

echo "wrk ${duration}s, 1 thread, $conns connections, every request a distinct user"
echo
echo '| target | connections | requests/s | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- |'
out=$(RUN_ID=b$$ wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$here/distinct_users.lua" "http://127.0.0.1:$broker_port" 2>&1)
summary "token-broker, cache misses (TLS to the simulator behind it)" "$out"

access=$(curl -sf --cacert "$work/sim/ca.pem" -u sim-client:sim-secret \
    -d 'grant_type=account_credentials&account_id=sim-account' "https://localhost:$sim_port/oauth/token" |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/')
out=$(RUN_ID=d$$ PATH_PREFIX=/v2/users/direct- PATH_SUFFIX='/token?type=zak' wrk -t1 -c"$conns" -d"${duration}s" \
    --latency -s "$here/distinct_users.lua" -H "Authorization: Bearer $access" "https://localhost:$sim_port" 2>&1)
summary "zoom-sim directly over TLS (wrk, kept-alive connections)" "$out"

metrics=$(curl -sf "http://127.0.0.1:$broker_port/metrics")
echo
echo "upstream TLS connections the broker opened: $(awk '/^token_broker_upstream_connections_total/ {print $2}' <<<"$metrics") (zoom.max_connections 16)"
echo "cache entries after the run: $(awk '/^token_broker_cache_entries/ {print $2}' <<<"$metrics")"
