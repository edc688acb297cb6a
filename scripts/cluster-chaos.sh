#!/usr/bin/env bash
# Chaos rounds against a local 3-node cluster (tests/compat/cluster_chaos.py): kill or stop a
# node per round under an acks=all producer, check offline reporting and recovery, then that
# no acknowledged record was lost or duplicated. Bounded by ROUNDS (default 10). Not in CI.
#   scripts/cluster-chaos.sh [ROUNDS]      SEED=n to replay a choice of victims
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-deps.sh >/dev/null
export RIPTIDE_BIN=${RIPTIDE_BIN:-target/release/riptide}
[ -x "$RIPTIDE_BIN" ] || cargo build --release -p riptide-server
exec .venv/bin/python tests/compat/cluster_chaos.py "${1:-10}"
