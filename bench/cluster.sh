#!/usr/bin/env bash
# A shared hit (a token in Redis but not in the serving replica's memory, CONTRACT.md section 7) on
# one redis-server and on a Redis Cluster of three masters, in the same run. For each Redis, two
# brokers A and B share it: A is asked for distinct users for FILL seconds, each a Zoom miss to
# zoom-sim that also fills Redis; then B is asked for those users, over and over, for DURATION
# seconds. B keeps one token in memory (cache.max_entries 1), so each of its answers is a miss in its
# own memory answered from Redis (on the cluster, from the master of that user's slot), however
# long it runs. Everything on loopback; the brokers (one server thread each) on CPU 0, wrk (one
# thread) on CPU 1; Redis and the simulator float. ROUNDS alternates the two (single, cluster,
# single, cluster...) with new users each round.
#
#   bench/cluster.sh BUILD_DIR [CONNECTIONS]      (default 64)
#
# Prints a row for each run (A's Zoom misses, B's shared hits) with p50 and p99, and the Zoom calls
# B made in each run (0 when every answer came from Redis). Environment: FILL (s, default 10),
# DURATION (s of B, default 10), ROUNDS (default 2).
set -euo pipefail

build=${1:?usage: bench/cluster.sh BUILD_DIR [CONNECTIONS]}
conns=${2:-64}
fill=${FILL:-10} duration=${DURATION:-10} rounds=${ROUNDS:-2}
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
start_broker() { # port redis_url max_entries
    cat >"$work/broker-$1.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $1, "threads": 1 },
  "zoom": $(zoom_block "$sim_port" '"max_connections": 16, "requests_per_second": 100000'),
  "cache": { "max_entries": $3 },
  "redis": { "url": "$2", "password": "$redis_password", "encryption_key": "$key" },
  "log": { "level": "warn", "format": "text" }
}
JSON
    taskset -c 0 "$build/service/token-broker" --config "$work/broker-$1.json" >"$work/broker-$1.log" 2>&1 &
    pids+=($!)
}
start_broker $single_a "redis://127.0.0.1:$single_port" 10000000
start_broker $single_b "redis://127.0.0.1:$single_port" 1
start_broker $cluster_a "$cluster_url" 10000000
start_broker $cluster_b "$cluster_url" 1
for port in $single_a $single_b $cluster_a $cluster_b; do
    wait_ready "$port" '"redis":"up"'
done

run_wrk() { # name port seconds run_id script [users]
    local out rps p50 p99 errors
    out=$(RUN_ID=$4 USERS=${6:-0} taskset -c 1 wrk -t1 -c"$conns" -d"$3s" --latency -s "$here/$5" \
        "http://127.0.0.1:$2" 2>&1)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    requests=$(awk '/requests in/ {print $1}' <<<"$out") # read by round()
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$conns" "$requests" "$rps" "$p50" "$p99" "${errors:-none}"
}
# One backend's round: A fills, then B reads the users A's answered requests asked for (less the
# last CONNECTIONS, which may have been in flight when wrk stopped), with its Zoom calls counted.
round() { # name a_port b_port run_id
    local before
    requests=0
    run_wrk "$1, A: Zoom misses (each fills Redis)" "$2" "$fill" "$4" distinct_users.lua
    before=$(zoom_calls "$3")
    run_wrk "$1, B: shared hits (a miss in B's memory, a hit in Redis)" "$3" "$duration" "$4" filled_users.lua \
        $((requests > 2 * conns ? requests - conns : requests))
    echo "$1: $(($(zoom_calls "$3") - before)) Zoom calls by B" >>"$work/calls.txt"
}
zoom_calls() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_upstream_requests_total\{code="200",endpoint="token"\}/ {n = $2} END {print n + 0}'
}
shared_hits() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_shared_cache_hits_total/ {n = $2} END {print n + 0}'
}

: >"$work/calls.txt"
echo '| run | connections | requests | requests/s | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- | --- |'
for i in $(seq "$rounds"); do
    round "round $i, one redis-server" $single_a $single_b "single-$i"
    round "round $i, cluster of three masters" $cluster_a $cluster_b "cluster-$i"
done
echo
cat "$work/calls.txt"
echo "one redis-server: Zoom calls by B $(zoom_calls $single_b), shared hits $(shared_hits $single_b)"
echo "cluster: Zoom calls by B $(zoom_calls $cluster_b), shared hits $(shared_hits $cluster_b)"
for port in "${cluster_ports[@]}"; do
    echo "cluster master $port: $(rcli "$port" dbsize) keys"
done
