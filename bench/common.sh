# Shared by the bench scripts: builds wharf (release; WHARF_BIN=path uses that binary instead)
# and the guests, finds the peer.
set -euo pipefail
# With RUST_BACKTRACE set, wasmtime 48 captures a backtrace on every Store drop (its fiber
# cleanup formats an error), which distorts every server figure: never measure with it.
unset RUST_BACKTRACE
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
# WHARF_PROFILE=dev measures a debug build: only to check that a script works, never for figures.
# WHARF_BIN=path skips building the binary.
profile=${WHARF_PROFILE:-release}
[ -n "${WHARF_BIN:-}" ] || cargo build --quiet --locked --profile "$profile" -p wharf
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path examples/hello/Cargo.toml
WHARF=${WHARF_BIN:-$target/$([ "$profile" = dev ] && echo debug || echo "$profile")/wharf}
GUESTS=$root/crates/test-programs/target/wasm32-wasip2/release
HELLO_CMD=$root/examples/hello/target/wasm32-wasip2/release/hello.wasm
# The peer: `cargo install wasmtime-cli --version '~48' --locked --root /opt/peers`, outside the repo.
WASMTIME=${WASMTIME:-$(command -v wasmtime || echo /opt/peers/bin/wasmtime)}
[ -x "$WASMTIME" ] || { echo "wasmtime-cli ~48 not found; see BENCHMARKS.md" >&2; exit 1; }
export WHARF_CACHE_DIR=${WHARF_CACHE_DIR:-$(mktemp -d)}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
echo "wharf: $($WHARF --version)  peer: $($WASMTIME --version)"
