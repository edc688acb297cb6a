#!/usr/bin/env bash
# Installs what the tests need when it is missing (Debian): kcat; openssl; node + npm for kafkajs; Debian's
# Go and its packaged sarama (built offline in GOPATH mode) for the client matrix; the pinned
# Python clients in .venv. Idempotent and quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
debs=()
command -v kcat >/dev/null 2>&1 || debs+=(kcat)
# The security tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || debs+=(openssl)
command -v node >/dev/null 2>&1 || debs+=(nodejs)
command -v npm >/dev/null 2>&1 || debs+=(npm)
command -v go >/dev/null 2>&1 || debs+=(golang-go)
[ -d /usr/share/gocode/src/github.com/Shopify/sarama ] || debs+=(golang-github-shopify-sarama-dev)
if ((${#debs[@]})); then
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq "${debs[@]}" >/dev/null
fi
if [ ! -d tests/compat/matrix/node_modules ]; then
    (cd tests/compat/matrix && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# pip is quick when the pinned versions are already installed.
.venv/bin/pip install -q --disable-pip-version-check -r tests/compat/requirements.txt
