#!/usr/bin/env bash
# Replication chaos rounds against a local 3-node cluster (tests/compat/chaos_replication.py):
# per round one random fault (kill -9 or SIGSTOP of a partition leader, kill -9 of a follower,
# SIGTERM of a node, a follower's log tail torn or garbaged) under an idempotent acks=all
# workload with consumers reading throughout; a Jepsen-style check after every round and at
# the end. Exits non-zero if anything acknowledged was lost, duplicated or reordered, anything
# read vanished, or the replicas' logs diverged. Bounded by ROUNDS (default 10). Not in CI.
# Builds nothing: uses $RIPTIDE_BIN, else the newer of target/release/riptide and
# target/debug/riptide.
#   scripts/chaos.sh [ROUNDS]      SEED=n to replay a sequence of faults
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RIPTIDE_BIN:-}" ]; then
    for b in target/release/riptide target/debug/riptide; do
        if [ -x "$b" ] && { [ -z "${RIPTIDE_BIN:-}" ] || [ "$b" -nt "$RIPTIDE_BIN" ]; }; then
            RIPTIDE_BIN=$b
        fi
    done
fi
if [ -z "${RIPTIDE_BIN:-}" ] || [ ! -x "$RIPTIDE_BIN" ]; then
    echo "chaos.sh: no riptide binary (build one: cargo build [--release] -p riptide-server, or set RIPTIDE_BIN)" >&2
    exit 2
fi
RIPTIDE_BIN=$(realpath "$RIPTIDE_BIN")
export RIPTIDE_BIN
./scripts/test-deps.sh >/dev/null
echo "chaos.sh: $RIPTIDE_BIN" >&2
exec .venv/bin/python tests/compat/chaos_replication.py "${1:-10}"
