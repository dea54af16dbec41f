# What the benchmark scripts share; sourced, never run. It makes $work (a temporary directory) and
# $pids (processes to stop), and removes both when the script exits (KEEP=1 keeps the directory).
# Everything listens on loopback.
#
#   start_sim BUILD PORT [CPU [ARGS...]]
#                                     zoom-sim with its certificates in $work/sim (CPU: taskset -c,
#                                     "" for none; ARGS: more of its options)
#   start_redis PORT                  redis-server, no persistence, password $redis_password
#   zoom_block SIM_PORT [MEMBERS]     the broker's "zoom" block for that simulator, plus JSON MEMBERS
#   redis_block REDIS_PORT KEY        the broker's "redis" block for that server and encryption key
#   wait_ready PORT [PATTERN]         waits for /readyz to answer 200 (and its body to hold PATTERN)
#   start_replica BUILD PORT SIM_PORT REDIS_PORT KEY [MEMBERS]
#                                     a broker (one server thread) sharing that Redis, plus JSON MEMBERS
#   bench_key / bench_key_sha         a caller key, and its SHA-256 for the "auth" block

work=$(mktemp -d)
pids=()
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${KEEP:-} ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap bench_cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

redis_password=bench-redis-password
bench_key=bench-caller-key-0123456789
bench_key_sha=$(printf %s "$bench_key" | sha256sum | cut -d' ' -f1)

start_sim() { # build port [cpu [args...]]
    local run=() build=$1 port=$2
    [[ -n ${3:-} ]] && run=(taskset -c "$3")
    shift $(($# < 3 ? $# : 3))
    "${run[@]}" "$build/sim/zoom-sim" --port "$port" --cert-dir "$work/sim" --token-padding 200 "$@" \
        >"$work/sim.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [[ -s $work/sim/ca.pem ]] && return; sleep 0.1; done
    echo "zoom-sim did not start:" >&2
    cat "$work/sim.log" >&2
    exit 1
}

start_redis() { # port
    redis-server --bind 127.0.0.1 --port "$1" --save '' --appendonly no --dir "$work" \
        --requirepass "$redis_password" >"$work/redis-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$1" -a "$redis_password" --no-auth-warning ping 2>/dev/null |
        grep -q PONG && return; sleep 0.1; done
    echo "redis-server did not start on $1" >&2
    exit 1
}

zoom_block() { # sim_port [members]
    cat <<JSON
{
    "api_base_url": "https://localhost:$1/v2", "oauth_token_url": "https://localhost:$1/oauth/token",
    "account_id": "sim-account", "client_id": "sim-client", "client_secret": "sim-secret",
    "ca_file": "$work/sim/ca.pem"${2:+, $2}
  }
JSON
}

redis_block() { # redis_port encryption_key
    printf '{ "url": "redis://127.0.0.1:%s", "password": "%s", "encryption_key": "%s" }' \
        "$1" "$redis_password" "$2"
}

wait_ready() { # port [pattern]
    for _ in $(seq "${READY_TRIES:-100}"); do
        curl -sf "http://127.0.0.1:$1/readyz" 2>/dev/null | grep -q "${2:-ready}" && return
        sleep 0.1
    done
    echo "the broker on $1 did not become ready" >&2
    exit 1
}

start_replica() { # build port sim_port redis_port encryption_key [members]
    cat >"$work/broker-$2.json" <<JSON
{
  "server": { "address": "127.0.0.1", "port": $2, "threads": 1 },
  "zoom": $(zoom_block "$3" '"requests_per_second": 100000'),
  "redis": $(redis_block "$4" "$5"),
  "log": { "level": "warn", "format": "text" }${6:+, $6}
}
JSON
    "$1/service/token-broker" --config "$work/broker-$2.json" >"$work/broker-$2.log" 2>&1 &
    pids+=($!)
}
