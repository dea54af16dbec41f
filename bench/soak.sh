#!/usr/bin/env bash
# Soak: a few million cache hits against one broker, its resident memory read before and after.
#
#   bench/soak.sh BUILD_DIR [SECONDS]      (default 30 s, 64 connections)
set -euo pipefail

build=${1:?usage: bench/soak.sh BUILD_DIR [SECONDS]}
seconds=${2:-30}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18445 broker_port=18083
start_sim "$build" "$sim_port"
cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port },
  "zoom": $(zoom_block "$sim_port")
}
JSON
"$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
wait_ready "$broker_port"

rss() { awk '/VmRSS/ {print $2}' "/proc/$broker/status"; }
# Warm up: the users of the run are all cached, and the buffers have grown.
for u in 1 2 3 4; do curl -sf "http://127.0.0.1:$broker_port/token/soak-$u" >/dev/null; done
wrk -t1 -c64 -d2s "http://127.0.0.1:$broker_port/token/soak-1" >/dev/null
before=$(rss)
out=$(wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$broker_port/token/soak-1" 2>&1)
after=$(rss)
echo "requests: $(awk '/requests in/ {print $1}' <<<"$out") in ${seconds}s ($(awk '/Requests\/sec/ {print $2}' <<<"$out")/s)"
echo "RSS before: ${before} kB, after: ${after} kB"
echo "errors: $( (grep -E 'Non-2xx|Socket errors' <<<"$out" || echo none) | tr '\n' ' ')"
