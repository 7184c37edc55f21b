#!/usr/bin/env bash
# Prepares a fresh machine for building and testing Wharf. Idempotent.
set -euo pipefail
rustup target add wasm32-wasip2
# The key-value tests start a real Redis server on 127.0.0.1 (a random port, a temp dir).
if ! command -v redis-server >/dev/null; then
    apt-get update
    apt-get install -y redis-server
fi
