#!/usr/bin/env bash
# Zoom's webhooks (CONTRACT.md section 9), measured on three replicas sharing one Redis, all on
# loopback with one server thread each: for each of COUNT users, fetched on one replica and read on
# the two others (so that all three hold it in memory), a user.signed_out event signed as Zoom signs
# it (openssl) is POSTed to one replica's webhook listener in turn. Its 200 comes only once every
# replica has confirmed that it forgot the user, so curl's total time of each 200 is the time from
# the POST to the last replica having forgotten: p50, p99 and the largest. After each 200 every
# replica must have dropped its copy (token_broker_local_copies_dropped_total{reason="forget"} has
# grown by one on each).
#
#   bench/webhook.sh BUILD_DIR        environment: COUNT (default 200)
set -euo pipefail

build=${1:?usage: bench/webhook.sh BUILD_DIR}
count=${COUNT:-200}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18447 redis_port=18381 ports=(18088 18089 18090) hooks=(18098 18099 18100)
start_redis "$redis_port"
start_sim "$build" "$sim_port"

key=$(openssl rand -hex 32)
secret=$(openssl rand -hex 16)
for i in 0 1 2; do
    start_replica "$build" "${ports[$i]}" "$sim_port" "$redis_port" "$key" \
        "\"webhook\": { \"port\": ${hooks[$i]}, \"secret_token\": \"$secret\" }"
done
for port in "${ports[@]}"; do wait_ready "$port" '"redis":"up"'; done

get() { curl -s "http://127.0.0.1:$1/token/$2"; }
dropped() { # port
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^token_broker_local_copies_dropped_total\{reason="forget"\}/ {n = $2} END {print n + 0}'
}

: >"$work/webhook.txt"
for i in $(seq "$count"); do
    user="hook-$i@example.com"
    for port in "${ports[@]}"; do
        [[ $(get "$port" "$user") == *'"token"'* ]] || { echo "GET failed" >&2; exit 1; }
    done
    body='{"event":"user.signed_out","event_ts":'"$(date +%s%3N)"',"payload":{"account_id":"sim-account","object":{"id":"UID'"$i"'","email":"'"$user"'"}}}'
    ts=$(date +%s)
    sig="v0=$(printf 'v0:%s:%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
    hook=${hooks[$((i % 3))]}
    read -r code took < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
        -H 'Content-Type: application/json' -H "x-zm-signature: $sig" -H "x-zm-request-timestamp: $ts" \
        --data-binary "$body" "http://127.0.0.1:$hook/zoom/webhook")
    [[ $code == 200 ]] || { echo "the event was answered $code" >&2; exit 1; }
    echo "$took" >>"$work/webhook.txt"
    for port in "${ports[@]}"; do
        [[ $(dropped "$port") == "$i" ]] || { echo "replica $port did not drop its copy" >&2; exit 1; }
    done
done
sort -g "$work/webhook.txt" | awk -v n="$count" '{ v[NR] = $1 * 1000 }
    END { printf "webhook eviction, three replicas, %d events (POST to 200): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
          n, v[int(n * 0.5 + 0.5)], v[int(n * 0.99 + 0.5)], v[n] }'
