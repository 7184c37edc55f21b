#!/usr/bin/env bash
# Installs what the bench scripts need beyond scripts/setup.sh (never run in CI): load
# generators, the busybox peer for the shim bench, and the wasmtime-cli peer, built outside
# the repository.
set -euo pipefail
if ! command -v hyperfine >/dev/null || ! command -v wrk >/dev/null || ! command -v busybox >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq hyperfine wrk busybox-static
fi
if [ ! -x /opt/peers/bin/wasmtime ]; then
  cargo install wasmtime-cli --version '~48' --locked --root /opt/peers
fi
