#!/usr/bin/env bash
# The cache-hit path under wrk, beside nginx serving a fixed JSON string of the same size, in the
# same run, on loopback. The server under test gets CPU 0, wrk gets CPU 1.
#
#   bench/hit_path.sh BUILD_DIR [CONNECTIONS...]     (default connections: 64 1024)
#
# Prints one markdown table row per server and connection count. Environment: DURATION (s, default 10);
# REDIS=1 runs the broker with a redis block (its own redis-server).
set -euo pipefail

build=${1:?usage: bench/hit_path.sh BUILD_DIR [CONNECTIONS...]}
shift
conns=("$@")
((${#conns[@]})) || conns=(64 1024)
duration=${DURATION:-10}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sim_port=18443 broker_port=18080 nginx_port=18081
user=jdoe@example.com
key=$bench_key

start_sim "$build" "$sim_port" 1

# REDIS=1: the broker shares its cache through a redis-server (a hit must not touch it).
redis_member=""
if [[ -n ${REDIS:-} ]]; then
    start_redis 18392
    redis_member=", \"redis\": $(redis_block 18392 "$(openssl rand -hex 32)")"
fi
cat >"$work/broker.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $broker_port, "threads": 1, "max_connections": 20000 },
  "zoom": $(zoom_block "$sim_port"),
  "auth": { "keys": [ { "name": "bench", "sha256": "$bench_key_sha", "users": ["*"] } ] },
  "log": { "level": "info", "format": "text" }$redis_member
}
JSON
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
taskset -c 0 "$build/service/token-broker" --config "$work/broker.json" >"$work/broker.log" 2>&1 &
pids+=($!)
wait_ready "$broker_port"

auth="Authorization: Bearer $key"
curl -sf -H "$auth" "http://127.0.0.1:$broker_port/token/$user" >/dev/null
body=$(curl -sf -H "$auth" "http://127.0.0.1:$broker_port/token/$user")

# nginx: one worker on the same CPU, the same body, keep-alive without a request cap.
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity 01;
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 20000; }
http {
    access_log \$NGINX_ACCESS_LOG;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            default_type application/json;
            add_header Cache-Control no-store;
            return 200 '$body';
        }
    }
}
NGINX

run_wrk() { # name url connections
    local out
    out=$(taskset -c 1 wrk -t1 -c"$3" -d"${duration}s" --latency -H "$auth" "$2" 2>&1)
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$3" "$rps" "$p50" "$p99" "${errors:-none}"
}

start_nginx() { # access log setting
    sed "s|\$NGINX_ACCESS_LOG|$1|" "$work/nginx/nginx.conf" >"$work/nginx/run.conf"
    nginx -c "$work/nginx/run.conf" -g 'daemon off;' &
    nginx_pid=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null && break; sleep 0.1; done
}

echo "body: ${#body} bytes; wrk ${duration}s per run, 1 wrk thread on CPU 1, servers on CPU 0"
echo
echo '| server | connections | requests/s | p50 | p99 | errors |'
echo '| --- | --- | --- | --- | --- | --- |'
for c in "${conns[@]}"; do
    run_wrk "token-broker (cache hit, audit line on)" "http://127.0.0.1:$broker_port/token/$user" "$c"
    start_nginx off
    run_wrk "nginx (fixed string, access_log off)" "http://127.0.0.1:$nginx_port/token/$user" "$c"
    kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
    start_nginx "$work/nginx/access.log combined buffer=64k flush=1s"
    run_wrk "nginx (fixed string, buffered access_log)" "http://127.0.0.1:$nginx_port/token/$user" "$c"
    kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
done
echo
echo "broker audit lines written: $(grep -c ' audit ' "$work/broker.log")"
