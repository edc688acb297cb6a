#!/usr/bin/env bash
# Runs every test: Rust unit/integration tests (engine + server), then the real-client
# compatibility suite (kcat, confluent-kafka, kafka-python, aiokafka) against a broker the
# suite starts itself. Installs what the tests need when it is missing (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stage.sh
# .ci/run installs first (as its own timed stage) and says so.
[ -n "${RIPTIDE_SKIP_DEPS:-}" ] || ./scripts/test-deps.sh
stage build cargo build --workspace --all-targets
stage cargo-test cargo test --workspace
# The engine's tests again with direct (O_DIRECT) appends, the crash and recovery tests among them.
stage engine-direct env RIPTIDE_LOG_IO=direct cargo test -p riptide-engine
export RIPTIDE_BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/debug/riptide}
PY=${PYTHON:-.venv/bin/python}
stage pytest "$PY" -m pytest -q -x --timeout=600 --durations=15 tests/compat "$@"
