#!/usr/bin/env bash
# A local miss answered from Redis (CONTRACT.md section 7): broker A fetches distinct users from the
# simulator (each a Zoom miss, which fills Redis), then broker B, sharing A's Redis, is asked for the
# same users: each is a miss in B's own memory and a hit in Redis. Both on loopback, one server
# thread each; wrk (one thread, so that its user counter runs in the same order) on CPU 1.
#
#   bench/shared_hit.sh BUILD_DIR [CONNECTIONS]      (default 64)
#
# Prints a row for A's Zoom misses and one for B's shared hits, and the Zoom calls B made (0 when
# every answer came from Redis). Environment: FILL (s, default 20), DURATION (s of B, default 5).
set -euo pipefail

build=${1:?usage: bench/shared_hit.sh BUILD_DIR [CONNECTIONS]}
conns=${2:-64}
fill=${FILL:-20} duration=${DURATION:-5}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18445 redis_port=18379 a_port=18083 b_port=18084
start_redis "$redis_port"
start_sim "$build" "$sim_port"

key=$(openssl rand -hex 32)
for port in $a_port $b_port; do
    cat >"$work/broker-$port.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $port, "threads": 1 },
  "zoom": $(zoom_block "$sim_port" '"max_connections": 16, "requests_per_second": 100000'),
  "cache": { "max_entries": 10000000 },
  "redis": $(redis_block "$redis_port" "$key"),
  "log": { "level": "info", "format": "text" }
}
JSON
    taskset -c 0 "$build/service/token-broker" --config "$work/broker-$port.json" >"$work/broker-$port.log" 2>&1 &
    pids+=($!)
done
for port in $a_port $b_port; do
    wait_ready "$port" '"redis":"up"'
done

run_wrk() { # name port seconds
    local out rps p50 p99 errors
    out=$(RUN_ID=shared taskset -c 1 wrk -t1 -c"$conns" -d"$3s" --latency -s "$here/distinct_users.lua" \
        "http://127.0.0.1:$2" 2>&1)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$conns" "$requests" "$rps" "$p50" "$p99" "${errors:-none}"
}
zoom_calls() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_upstream_requests_total\{code="200",endpoint="token"\}/ {n = $2} END {print n + 0}'
}

echo '| run | connections | requests | requests/s | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- | --- |'
run_wrk "broker A: Zoom misses (each fills Redis)" $a_port "$fill"
run_wrk "broker B: the same users, local misses answered from Redis" $b_port "$duration"
echo
echo "Zoom calls by A: $(zoom_calls $a_port); by B: $(zoom_calls $b_port)"
curl -sf "http://127.0.0.1:$b_port/metrics" | grep -E '^token_broker_(shared_cache_hits_total|cache_misses_total|redis_commands_total)' || true
