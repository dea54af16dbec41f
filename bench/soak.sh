#!/usr/bin/env bash
# Soak: a few million cache hits against one broker, its resident memory read before and after.
#
#   bench/soak.sh BUILD_DIR [SECONDS]      (default 30 s, 64 connections)
set -euo pipefail

build=${1:?usage: bench/soak.sh BUILD_DIR [SECONDS]}
seconds=${2:-30}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sim_port=18445 broker_port=18083
"$build/sim/zoom-sim" --port "$sim_port" --cert-dir "$work/sim" --token-padding 200 >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -s $work/sim/ca.pem ]] && break; sleep 0.1; done
cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port },
  "zoom": {
    "api_base_url": "https://localhost:$sim_port/v2", "oauth_token_url": "https://localhost:$sim_port/oauth/token",
    "account_id": "sim-account", "client_id": "sim-client", "client_secret": "sim-secret", "ca_file": "$work/sim/ca.pem"
  }
}
JSON
"$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$broker_port/readyz" >/dev/null && break; sleep 0.1; done

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
