#!/usr/bin/env bash
# Runs every test: Rust unit/integration tests (engine + server), then the real-client
# compatibility suite (kcat, confluent-kafka, kafka-python, aiokafka) against a broker the
# suite starts itself. Installs what the tests need when it is missing (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-deps.sh
cargo build --workspace --all-targets
cargo test --workspace
export RIPTIDE_BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/debug/riptide}
PY=${PYTHON:-.venv/bin/python}
"$PY" -m pytest -q -x tests/compat "$@"
