#!/usr/bin/env bash
# Instructions per cache hit, counted by valgrind's callgrind: repeatable for the same binary and
# inputs whatever else the machine is doing, so two builds can be compared on a busy machine.
# The broker runs under callgrind with instrumentation off; it is switched on only while wrk sends
# hits (after one warming request), and the count is divided by the requests wrk reports.
#
#   bench/hit_instructions.sh BUILD_DIR [SECONDS]      (default 8 s of wrk -c8)
#
# Prints "instructions per hit: N (requests: R)". Needs valgrind, wrk and curl. REDIS=1 runs the
# broker with a redis block (its own redis-server), to show that a hit costs the same with Redis.
set -euo pipefail

build=${1:?usage: bench/hit_instructions.sh BUILD_DIR [SECONDS]}
seconds=${2:-8}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=${SIM_PORT:-18543} broker_port=${BROKER_PORT:-18180}
user=jdoe@example.com
key=$bench_key

start_sim "$build" "$sim_port"

# REDIS=1: the broker shares its cache through a redis-server (a hit must not touch it).
redis_member=""
if [[ -n ${REDIS:-} ]]; then
    start_redis 18391
    redis_member=", \"redis\": $(redis_block 18391 "$(openssl rand -hex 32)")"
fi
cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port, "threads": 1 },
  "zoom": $(zoom_block "$sim_port"),
  "auth": { "keys": [ { "name": "bench", "sha256": "$bench_key_sha", "users": ["*"] } ] },
  "log": { "level": "info", "format": "text" }$redis_member
}
JSON
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>"$work/valgrind.log" &
broker_pid=$!
pids+=("$broker_pid")
READY_TRIES=600 wait_ready "$broker_port"

auth="Authorization: Bearer $key"
curl -sf -H "$auth" "http://127.0.0.1:$broker_port/token/$user" >/dev/null # the miss that fills the cache
curl -sf -H "$auth" "http://127.0.0.1:$broker_port/token/$user" >/dev/null

callgrind_control -i on "$broker_pid" >/dev/null
out=$(wrk -t1 -c8 -d"${seconds}s" -H "$auth" "http://127.0.0.1:$broker_port/token/$user" 2>&1)
callgrind_control -i off "$broker_pid" >/dev/null
requests=$(awk '/requests in/ {print $1}' <<<"$out")
if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "wrk saw errors:" >&2
    echo "$out" >&2
    exit 1
fi
kill -TERM "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
instructions=$(awk '/^totals:/ {print $2; exit}' "$work/callgrind.out")
echo "instructions per hit: $((instructions / requests)) (requests: $requests, instructions: $instructions)"
