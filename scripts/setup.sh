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
