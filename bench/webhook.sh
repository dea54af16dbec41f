#!/usr/bin/env bash
# Zoom's webhooks (CONTRACT.md section 9), measured on three replicas sharing one Redis, all on
# loopback with one server thread each. For each of COUNT users, fetched on one replica and read on
# the two others (so that all three hold it in memory), the simulator is asked to sign the user out
# (POST /admin/users/{id}/sign_out, sim/README.md) and posts the signed user.signed_out event to one
# replica's webhook listener in turn (POST /admin/webhook before each event, not timed). The
# replica answers 200 only once every replica has confirmed that it forgot the user, so the
# simulator's took_us (from its POST to that 200) is the time from Zoom's POST to the last replica
# having forgotten: p50, p99 and the largest. After each 200 every replica must have dropped its
# copy (token_broker_local_copies_dropped_total{reason="forget"} has grown by one on each).
#
#   bench/webhook.sh BUILD_DIR        environment: COUNT (default 200);
#                                     EVENT=deactivate: user.deactivated instead (a revocation:
#                                     the forget and the revoked mark for every replica);
#                                     VIA=script: the script signs each user.signed_out itself
#                                     (openssl) and POSTs it, curl's total time measured instead
set -euo pipefail

build=${1:?usage: bench/webhook.sh BUILD_DIR}
count=${COUNT:-200}
event=${EVENT:-sign_out}
via=${VIA:-sim}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18447 redis_port=18381 ports=(18088 18089 18090) hooks=(18098 18099 18100)
key=$(openssl rand -hex 32)
secret=$(openssl rand -hex 16)
printf %s "$secret" >"$work/webhook-secret"
start_redis "$redis_port"
start_sim "$build" "$sim_port" "" --webhook-secret-file "$work/webhook-secret"

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
admin() { # method path [body]
    curl -s --cacert "$work/sim/ca.pem" -X "$1" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
        "https://localhost:$sim_port$2"
}

# One event for user $1 through replica $2's listener: "STATUS SECONDS".
through_sim() {
    admin POST /admin/webhook '{"url":"http://127.0.0.1:'"$2"'/zoom/webhook"}' | grep -q webhook_url ||
        { echo "POST /admin/webhook failed" >&2; exit 1; }
    local answer
    answer=$(admin POST "/admin/users/$1/$event")
    local status took
    status=$(grep -o '"status":[0-9]*' <<<"$answer" | head -1 | cut -d: -f2)
    took=$(grep -o '"took_us":[0-9]*' <<<"$answer" | cut -d: -f2)
    echo "${status:-0} $(awk -v us="${took:-0}" 'BEGIN { printf "%.6f", us / 1e6 }')"
}
through_script() {
    local body ts sig
    body='{"event":"user.signed_out","event_ts":'"$(date +%s%3N)"',"payload":{"account_id":"sim-account","object":{"id":"UID'"$3"'","email":"'"$1"'"}}}'
    ts=$(date +%s)
    sig="v0=$(printf 'v0:%s:%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
        -H 'Content-Type: application/json' -H "x-zm-signature: $sig" -H "x-zm-request-timestamp: $ts" \
        --data-binary "$body" "http://127.0.0.1:$2/zoom/webhook"
}

: >"$work/webhook.txt"
for i in $(seq "$count"); do
    user="hook-$i@example.com"
    for port in "${ports[@]}"; do
        [[ $(get "$port" "$user") == *'"token"'* ]] || { echo "GET failed" >&2; exit 1; }
    done
    hook=${hooks[$((i % 3))]}
    if [[ $via == script ]]; then
        result=$(through_script "$user" "$hook" "$i")
    else
        result=$(through_sim "$user" "$hook")
    fi
    read -r code took <<<"$result"
    [[ $code == 200 ]] || { echo "the event was answered $code" >&2; exit 1; }
    echo "$took" >>"$work/webhook.txt"
    for port in "${ports[@]}"; do
        [[ $(dropped "$port") == "$i" ]] || { echo "replica $port did not drop its copy" >&2; exit 1; }
    done
done
what="user.signed_out, signed by the simulator (took_us: its POST to the 200)"
[[ $event == deactivate ]] && what="user.deactivated, signed by the simulator (took_us: its POST to the 200)"
[[ $via == script ]] && what="user.signed_out, signed by the script (curl's total time of the 200)"
sort -g "$work/webhook.txt" | awk -v n="$count" -v what="$what" '{ v[NR] = $1 * 1000 }
    END { printf "webhook eviction, three replicas, %d events, %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
          n, what, v[int(n * 0.5 + 0.5)], v[int(n * 0.99 + 0.5)], v[n] }'
