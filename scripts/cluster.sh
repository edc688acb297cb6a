#!/usr/bin/env bash
# A local N-node riptide cluster for development and tests: every node is a combined broker and
# controller on loopback with its own ports and data directory under ./data/cluster.
#
#   scripts/cluster.sh [N]        start N nodes (default 3) in the background, print the status
#   scripts/cluster.sh stop       stop them (SIGTERM: controlled shutdown)
#   scripts/cluster.sh status     riptide cluster status
#
# Node i (1..N): Kafka on 127.0.0.1:(9092+100*i), controller on :(9093+100*i), metrics on
# :(9094+100*i), REST on :(9095+100*i), data in data/cluster/node-i, log in
# data/cluster/node-i.log. "up" is said only once every node has written its ready file (it
# answers ApiVersions) and answers `riptide cluster info`.
# RIPTIDE_BIN picks the binary (default: a release build, built if missing); extra flags for
# every node go in RIPTIDE_NODE_ARGS (e.g. "--override broker.session.timeout.ms=3000");
# RIPTIDE_CLUSTER_DIR and RIPTIDE_CLUSTER_HOST move the data and the listen address (the tests
# run it on a loopback address of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${RIPTIDE_CLUSTER_DIR:-data/cluster}
HOST=${RIPTIDE_CLUSTER_HOST:-$(cat "$DIR/host" 2>/dev/null || echo 127.0.0.1)}
BIN=${RIPTIDE_BIN:-target/release/riptide}
kafka_port() { echo $((9092 + 100 * $1)); }

ensure_bin() {
    if [ ! -x "$BIN" ]; then
        cargo build --release -p riptide-server
    fi
}

stop() {
    shopt -s nullglob
    local pids=()
    for f in "$DIR"/node-*.pid; do
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" && pids+=("$pid")
        fi
        rm -f "$f"
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
    done
    echo "stopped ${#pids[@]} node(s)"
}

status() {
    ensure_bin
    local brokers=()
    for f in "$DIR"/node-*.pid; do
        i=${f##*/node-}; i=${i%.pid}
        brokers+=("$HOST:$(kafka_port "$i")")
    done
    IFS=,; "$BIN" cluster --brokers "${brokers[*]}" status
}

start() {
    local n=$1
    ensure_bin
    mkdir -p "$DIR"
    echo "$HOST" >"$DIR/host"
    local voters=()
    for i in $(seq 1 "$n"); do voters+=("$i@$HOST:$((9093 + 100 * i))"); done
    local voters_csv
    voters_csv=$(IFS=,; echo "${voters[*]}")
    for i in $(seq 1 "$n"); do
        if [ -f "$DIR/node-$i.pid" ] && kill -0 "$(cat "$DIR/node-$i.pid")" 2>/dev/null; then
            echo "node $i already runs (pid $(cat "$DIR/node-$i.pid"))"
            continue
        fi
        # shellcheck disable=SC2086
        rm -f "$DIR/node-$i.ready.json"
        # shellcheck disable=SC2086
        "$BIN" serve --data-dir "$DIR/node-$i" --node-id "$i" --shards 1 --no-pin \
            --metrics-listen "$HOST:$((9094 + 100 * i))" \
            --rest-listen "$HOST:$((9095 + 100 * i))" \
            --ready-file "$DIR/node-$i.ready.json" \
            --override "process.roles=broker,controller" \
            --override "controller.quorum.voters=$voters_csv" \
            --override "listeners=PLAINTEXT://$HOST:$(kafka_port "$i"),CONTROLLER://$HOST:$((9093 + 100 * i))" \
            ${RIPTIDE_NODE_ARGS:-} >>"$DIR/node-$i.log" 2>&1 &
        echo $! >"$DIR/node-$i.pid"
    done
    for i in $(seq 1 "$n"); do
        local ok=0
        # Up to 60 s per node: the ready file, then an answer to `riptide cluster info`.
        for _ in $(seq 1 600); do
            if [ -f "$DIR/node-$i.ready.json" ] &&
                "$BIN" cluster --brokers "$HOST:$(kafka_port "$i")" info >/dev/null 2>&1; then
                ok=1
                break
            fi
            kill -0 "$(cat "$DIR/node-$i.pid")" 2>/dev/null || break
            sleep 0.1
        done
        if [ $ok = 0 ]; then
            echo "node $i did not start; see $DIR/node-$i.log" >&2
            tail -5 "$DIR/node-$i.log" >&2
            exit 1
        fi
    done
    echo "cluster of $n node(s) up; bootstrap: $(for i in $(seq 1 "$n"); do printf '%s:%s,' "$HOST" "$(kafka_port "$i")"; done | sed 's/,$//')"
    status
}

case "${1:-3}" in
    stop) stop ;;
    status) status ;;
    ''|*[!0-9]*) echo "usage: $0 [N] | stop | status" >&2; exit 2 ;;
    *) start "$1" ;;
esac
