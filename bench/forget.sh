#!/usr/bin/env bash
# Forgetting is certain (CONTRACT.md section 7), measured on three replicas sharing one Redis, all on
# loopback with one server thread each:
#   1. DELETE latency: each of COUNT users is fetched on one replica and read on the two others (so
#      that all three hold it in memory), then DELETEd on one of them in turn; curl's total time of
#      each 204 gives p50, p99 and the largest.
#   2. How long a replica whose subscription is lost keeps serving from memory: its subscription is
#      cut (CLIENT KILL TYPE pubsub) with SUBSCRIBE taken away by the ACL, while it is asked for a
#      token every 10 ms; the time until its token_broker_local_copies_dropped_total{reason=
#      "lease_lapsed"} moves is the time it served copies it could no longer vouch for (at most
#      redis.invalidation_lease_ms, 1000 ms by default). ROUNDS times.
#
#   bench/forget.sh BUILD_DIR        environment: COUNT (default 200), ROUNDS (default 5)
set -euo pipefail

build=${1:?usage: bench/forget.sh BUILD_DIR}
count=${COUNT:-200} rounds=${ROUNDS:-5}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18446 redis_port=18380 ports=(18085 18086 18087)
start_redis "$redis_port"
start_sim "$build" "$sim_port"
rcli() { redis-cli -p "$redis_port" -a "$redis_password" --no-auth-warning "$@"; }

key=$(openssl rand -hex 32)
for port in "${ports[@]}"; do start_replica "$build" "$port" "$sim_port" "$redis_port" "$key"; done
for port in "${ports[@]}"; do wait_ready "$port" '"redis":"up"'; done

get() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/token/$2"; }

: >"$work/delete.txt"
for i in $(seq "$count"); do
    user="forget-$i@example.com"
    for port in "${ports[@]}"; do [[ $(get "$port" "$user") == 200 ]] || { echo "GET failed" >&2; exit 1; }; done
    port=${ports[$((i % 3))]}
    read -r code took < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X DELETE \
        "http://127.0.0.1:$port/token/$user")
    [[ $code == 204 ]] || { echo "DELETE answered $code" >&2; exit 1; }
    echo "$took" >>"$work/delete.txt"
done
sort -g "$work/delete.txt" | awk -v n="$count" '{ v[NR] = $1 * 1000 }
    END { printf "DELETE, three replicas, %d users: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
          n, v[int(n * 0.5 + 0.5)], v[int(n * 0.99 + 0.5)], v[n] }'

lapsed() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_local_copies_dropped_total\{reason="lease_lapsed"\}/ {n = $2} END {print n + 0}'
}
watched=${ports[1]}
for round in $(seq "$rounds"); do
    get "$watched" "lost-$round@example.com" >/dev/null
    get "$watched" "lost-$round@example.com" >/dev/null # a hit from memory
    before=$(lapsed "$watched")
    rcli ACL SETUSER default -subscribe >/dev/null
    start=$(date +%s%N)
    rcli CLIENT KILL TYPE pubsub >/dev/null
    while [[ $(lapsed "$watched") == "$before" ]]; do
        get "$watched" "lost-$round@example.com" >/dev/null
        sleep 0.01
    done
    echo "round $round: a lost subscription served from memory for at most $(((($(date +%s%N) - start)) / 1000000)) ms"
    rcli ACL SETUSER default +subscribe >/dev/null
    for port in "${ports[@]}"; do wait_ready "$port" '"redis":"up"'; done
    sleep 1.5 # the subscriptions are made again (backoff) and proved alive
done
