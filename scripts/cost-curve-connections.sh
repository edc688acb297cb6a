#!/usr/bin/env bash
# The cost curve over connections (issue 18, item 5): N client connections (default 10, 1,000,
# 10,000) from one process (scripts/conn_load.py), each having done ApiVersions and Metadata,
#   idle:   then idle for --idle seconds: broker CPU % and RSS over that window, and how long
#           opening the N connections took;
#   active: each producing 1 KiB records, acks=all, one record per request, --rate msgs/s in
#           total spread over the N connections (open loop): achieved rate, p50/p99, broker CPU %
#           and CPU-s/GB, RSS;
# and one more point: the idle broker with a 4,096-partition topic and 10,000 idle connections,
# measured after a restart of the broker that created the topic: a segment created by the running
# process keeps its index files open for its roll (4 descriptors per partition with the log file
# and the directory), a reopened one only its log file and directory (2), which is what lets
# 4,096 partitions and 10,000 connections fit under this container's hard limit of 20,000.
# A fresh release broker (--shards, default 2; durability.policy=fsync, max.connections raised to 15,000) per
# point; --rounds rounds of every point. Before each point it waits (at most 2 min) until no rustc
# runs. Prints one JSON line per point. Not run in CI.
# Usage: scripts/cost-curve-connections.sh [--rounds R] [--shards S] [--idle S] [--duration S] [--rate R]
#            [--only-big] [N...]       (--only-big: just the 4,096-partition point)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2 IDLE=15 DURATION=15 RATE=5000 SHARDS=2 CONNS=() ONLY_BIG=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --idle) IDLE=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --shards) SHARDS=$2; shift ;;
        --only-big) ONLY_BIG=1 ;;
        *) CONNS+=("$1") ;;
    esac
    shift
done
[ ${#CONNS[@]} -gt 0 ] || CONNS=(10 1000 10000)
[ "$ONLY_BIG" = 0 ] || CONNS=()
BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}
PY=${PYTHON:-.venv/bin/python}
# 10,000 sockets in the client and in the broker: the soft limit up to the hard one (20,000 in
# this container, which lacks CAP_SYS_RESOURCE to go higher).
ulimit -n "$(ulimit -Hn)"
PID="" DATA=""
cleanup() {
    if [ -n "$PID" ]; then  # SIGTERM, and SIGKILL 10 s later for a broker that does not stop
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ -n "$DATA" ]; then rm -rf "$DATA" "$DATA.log"; fi
    PID="" DATA=""
}
trap cleanup EXIT

wait_quiet() {  # other work on this shared machine: wait for builds to finish, 2 min at most
    for _ in $(seq 120); do pgrep -x rustc >/dev/null || return 0; sleep 1; done
    echo "rustc still running after 2 min; measuring anyway" >&2
}

launch() {  # the broker on $DATA and $PORT
    "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --metrics-listen off --rest-listen off \
        --shards "$SHARDS" --override max.connections=15000 2>>"$DATA.log" &
    PID=$!
    for _ in $(seq 300); do kcat -b "127.0.0.1:$PORT" -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
}

start_broker() {  # $1 = partitions of the topic "conn"; $2 = restart (1) after creating it
    DATA=$(mktemp -d)
    PORT=$((20000 + RANDOM % 20000))
    launch
    "$PY" - "127.0.0.1:$PORT" "$1" 2>/dev/null <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
admin.create_topics([NewTopic("conn", int(sys.argv[2]), 1)])["conn"].result(60)
EOF
    if [ "${2:-0}" = 1 ]; then
        kill "$PID"
        for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        wait "$PID" 2>/dev/null || true
        launch
        echo "restarted: $(ls /proc/"$PID"/fd | wc -l) descriptors open" >&2
    fi
}

point() {  # $1 = round, $2 = partitions, $3 = restart (0/1), $4... = conn_load.py arguments
    local round=$1 parts=$2 restart=$3
    shift 3
    wait_quiet
    start_broker "$parts" "$restart"
    printf '{"round": %s, "shards": %s, "partitions": %s, "result": ' "$round" "$SHARDS" "$parts"
    timeout 300 "$PY" scripts/conn_load.py --bootstrap "127.0.0.1:$PORT" --topic conn --broker-pid "$PID" "$@" \
        | tr -d '\n' || printf '{"failed": true}'
    printf '}\n'
    cleanup
}

for round in $(seq "$ROUNDS"); do
    for n in ${CONNS[@]+"${CONNS[@]}"}; do
        point "$round" 16 0 --connections "$n" --idle "$IDLE"
        point "$round" 16 0 --connections "$n" --partitions 16 --rate "$RATE" --duration "$DURATION"
    done
    point "$round" 4096 1 --connections 10000 --idle "$IDLE"
done
