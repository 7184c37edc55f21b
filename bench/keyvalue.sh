#!/usr/bin/env bash
# wasi:keyvalue on redb: a guest (`kv_store bench`) under `wharf run` next to native redb doing
# the same operations (crates/wharf-keyvalue/examples/redb_native.rs) with the same durability
# (one durable write transaction per increment or set, one read transaction per get), in the
# same run, alternating, each on a fresh file in the same temp dir. Prints a Markdown table.
#
#   bash bench/keyvalue.sh [N]     N of each operation (default 5000); ROUNDS=3
#   WHARF_BIN=path/to/wharf ...     use that binary instead of building target/release/wharf
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}
[ -n "${WHARF_BIN:-}" ] || cargo build --quiet --release --locked -p wharf
cargo build --quiet --release --locked -p wharf-keyvalue --example redb_native
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml \
    --bin kv_store --target-dir "$target/bench-guests"
guest="$target/bench-guests/wasm32-wasip2/release/kv_store.wasm"
wharf=${WHARF_BIN:-$target/release/wharf}
native="$target/release/examples/redb_native"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[keyvalue.stores.default]\ntype = "redb"\npath = "guest.redb"\n' >"$tmp/runtime.toml"
export WHARF_CACHE_DIR="$tmp/cache"
"$wharf" compile "$guest" >/dev/null

# "increment 123/s set 45/s get 6789/s" -> the figure after OP.
rate() { sed -E "s#.*$2 ([0-9]+)/s.*#\\1#" <<<"$1"; }

echo "N=$n per operation, $(nproc) cores, $(uname -sr), $("$wharf" --version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | operation | guest under \`wharf run\` (ops/s) | native redb (ops/s) | guest / native |"
echo "|---|---|---:|---:|---:|"
for round in $(seq "$rounds"); do
    rm -f "$tmp/guest.redb" "$tmp/native.redb"
    guest_out=$("$wharf" run --runtime-config "$tmp/runtime.toml" --kv bench "$guest" bench bench "$n")
    native_out=$("$native" "$tmp/native.redb" "$n")
    for op in increment set get; do
        g=$(rate "$guest_out" "$op")
        r=$(rate "$native_out" "$op")
        printf '| %s | %s | %s | %s | %s |\n' "$round" "$op" "$g" "$r" "$(awk -v g="$g" -v r="$r" 'BEGIN { printf "%.2f", g / r }')"
    done
done
