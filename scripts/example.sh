#!/usr/bin/env bash
# Builds the bundled example component and runs it with `wharf run`: once with no grants,
# once granting one environment variable.
set -euo pipefail
cd "$(dirname "$0")/.."
# WHARF_PROFILE=dev reuses a debug build (CI runs this after the tests built one).
profile=${WHARF_PROFILE:-release}
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path examples/hello/Cargo.toml
cargo build --quiet --locked --profile "$profile" -p wharf
wharf=target/$([ "$profile" = dev ] && echo debug || echo "$profile")/wharf
wasm=examples/hello/target/wasm32-wasip2/release/hello.wasm
set -x
"$wharf" run "$wasm" -- Wharf
GREETING=hi "$wharf" run --env GREETING "$wasm" -- Wharf
