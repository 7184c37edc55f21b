#!/usr/bin/env bash
# wasi:keyvalue on redb: a guest (`kv_store bench`) under `wharf run` next to native redb doing
# the same operations (crates/wharf-keyvalue/examples/redb_native.rs), in the same run, each on a
# fresh file in the same temp dir. Usage: bench/keyvalue.sh [N] (default 5000 of each operation).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
target=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --locked -p wharf
cargo build --quiet --release --locked -p wharf-keyvalue --example redb_native
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml \
    --bin kv_store --target-dir "$target/bench-guests"
guest="$target/bench-guests/wasm32-wasip2/release/kv_store.wasm"
wharf=${WHARF_BIN:-$target/release/wharf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[keyvalue.stores.default]\ntype = "redb"\npath = "guest.redb"\n' >"$tmp/runtime.toml"
export WHARF_CACHE_DIR="$tmp/cache"
"$wharf" compile "$guest" >/dev/null
echo "N=$n, $(nproc) cores, $(uname -sr)"
for round in 1 2 3; do
    rm -f "$tmp/guest.redb" "$tmp/native.redb"
    printf 'round %s  wharf guest: %s\n' "$round" \
        "$("$wharf" run --runtime-config "$tmp/runtime.toml" --kv bench "$guest" bench bench "$n")"
    printf 'round %s  native redb: %s\n' "$round" "$("$target/release/examples/redb_native" "$tmp/native.redb" "$n")"
done
