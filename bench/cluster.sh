#!/usr/bin/env bash
# A shared hit (a token in Redis but not in the serving replica's memory, CONTRACT.md section 7) on
# one redis-server and on a Redis Cluster of three masters, in the same run. For each Redis, two
# brokers A and B share it: A is asked for distinct users for FILL seconds, each a Zoom miss to
# zoom-sim that also fills Redis; then B is asked for the same users in the same order for DURATION
# seconds: each is a miss in B's own memory answered from Redis (on the cluster, from the master of
# that user's slot). Everything on loopback; the brokers (one server thread each) on CPU 0, wrk (one
# thread, so that its user counter runs in the same order) on CPU 1; Redis and the simulator float.
# ROUNDS alternates the two (single, cluster, single, cluster...) with new users each round.
#
#   bench/cluster.sh BUILD_DIR [CONNECTIONS]      (default 64)
#
# Prints a row for each run (A's Zoom misses, B's shared hits) with p50 and p99, and the Zoom calls
# each B made (0 when every answer came from Redis). Environment: FILL (s, default 20), DURATION (s
# of B, default 5), ROUNDS (default 2).
set -euo pipefail

build=${1:?usage: bench/cluster.sh BUILD_DIR [CONNECTIONS]}
conns=${2:-64}
fill=${FILL:-20} duration=${DURATION:-5} rounds=${ROUNDS:-2}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18448 single_port=18385 cluster_ports=(18386 18387 18388)
single_a=18101 single_b=18102 cluster_a=18103 cluster_b=18104

start_redis "$single_port"
for port in "${cluster_ports[@]}"; do
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$work" \
        --requirepass "$redis_password" --masterauth "$redis_password" --cluster-enabled yes \
        --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 >"$work/redis-$port.log" 2>&1 &
    pids+=($!)
done
rcli() { # port args...
    local port=$1
    shift
    redis-cli -p "$port" -a "$redis_password" --no-auth-warning "$@"
}
for port in "${cluster_ports[@]}"; do
    for _ in $(seq 100); do rcli "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
rcli "${cluster_ports[0]}" --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
    --cluster-replicas 0 --cluster-yes >"$work/cluster-create.log" 2>&1
for port in "${cluster_ports[@]}"; do
    for i in $(seq 200); do
        rcli "$port" cluster info | grep -q cluster_state:ok && break
        [[ $i == 200 ]] && { echo "the cluster did not become ok" >&2; exit 1; }
        sleep 0.1
    done
done
start_sim "$build" "$sim_port"

key=$(openssl rand -hex 32)
cluster_url="redis+cluster://$(printf '127.0.0.1:%s,' "${cluster_ports[@]}" | sed 's/,$//')"
start_broker() { # port redis_url
    cat >"$work/broker-$1.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $1, "threads": 1 },
  "zoom": $(zoom_block "$sim_port" '"max_connections": 16, "requests_per_second": 100000'),
  "cache": { "max_entries": 10000000 },
  "redis": { "url": "$2", "password": "$redis_password", "encryption_key": "$key" },
  "log": { "level": "warn", "format": "text" }
}
JSON
    taskset -c 0 "$build/service/token-broker" --config "$work/broker-$1.json" >"$work/broker-$1.log" 2>&1 &
    pids+=($!)
}
start_broker $single_a "redis://127.0.0.1:$single_port"
start_broker $single_b "redis://127.0.0.1:$single_port"
start_broker $cluster_a "$cluster_url"
start_broker $cluster_b "$cluster_url"
for port in $single_a $single_b $cluster_a $cluster_b; do
    wait_ready "$port" '"redis":"up"'
done

run_wrk() { # name port seconds run_id
    local out rps p50 p99 errors requests
    out=$(RUN_ID=$4 taskset -c 1 wrk -t1 -c"$conns" -d"$3s" --latency -s "$here/distinct_users.lua" \
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
shared_hits() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_shared_cache_hits_total/ {n = $2} END {print n + 0}'
}

echo '| run | connections | requests | requests/s | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- | --- |'
for round in $(seq "$rounds"); do
    run_wrk "round $round, one redis-server, A: Zoom misses (each fills Redis)" $single_a "$fill" "single-$round"
    run_wrk "round $round, one redis-server, B: shared hits" $single_b "$duration" "single-$round"
    run_wrk "round $round, cluster of three masters, A: Zoom misses (each fills Redis)" $cluster_a "$fill" "cluster-$round"
    run_wrk "round $round, cluster of three masters, B: shared hits" $cluster_b "$duration" "cluster-$round"
done
echo
echo "one redis-server: Zoom calls by B $(zoom_calls $single_b), shared hits $(shared_hits $single_b)"
echo "cluster: Zoom calls by B $(zoom_calls $cluster_b), shared hits $(shared_hits $cluster_b)"
for port in "${cluster_ports[@]}"; do
    echo "cluster master $port: $(rcli "$port" dbsize) keys"
done
