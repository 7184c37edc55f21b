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
