#!/usr/bin/env bash
# Instructions per cache hit, counted by valgrind's callgrind: repeatable for the same binary and
# inputs whatever else the machine is doing, so two builds can be compared on a busy machine.
# The broker runs under callgrind with instrumentation off; it is switched on only while wrk sends
# hits (after one warming request), and the count is divided by the requests wrk reports.
#
#   bench/hit_instructions.sh BUILD_DIR [SECONDS]      (default 8 s of wrk -c8)
#
# Prints "instructions per hit: N (requests: R)". Needs valgrind, wrk and curl.
set -euo pipefail

build=${1:?usage: bench/hit_instructions.sh BUILD_DIR [SECONDS]}
seconds=${2:-8}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n ${KEEP:-} ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

sim_port=${SIM_PORT:-18543} broker_port=${BROKER_PORT:-18180}
user=jdoe@example.com
key=bench-caller-key-0123456789
key_sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)

"$build/sim/zoom-sim" --port "$sim_port" --cert-dir "$work/sim" --token-padding 200 >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s $work/sim/ca.pem ]] && break; sleep 0.1; done

cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port, "threads": 1 },
  "zoom": {
    "api_base_url": "https://localhost:$sim_port/v2", "oauth_token_url": "https://localhost:$sim_port/oauth/token",
    "account_id": "sim-account", "client_id": "sim-client", "client_secret": "sim-secret",
    "ca_file": "$work/sim/ca.pem"
  },
  "auth": { "keys": [ { "name": "bench", "sha256": "$key_sha", "users": ["*"] } ] },
  "log": { "level": "info", "format": "text" }
}
JSON
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>"$work/valgrind.log" &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$broker_port/readyz" >/dev/null && break; sleep 0.1; done

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
