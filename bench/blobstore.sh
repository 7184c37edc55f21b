#!/usr/bin/env bash
# wasi:blobstore throughput: a guest (`blob_store bench`: 256 KiB writes, 1 MiB reads) under
# `wharf run` writing then reading one object of MIB MiB, next to native access to the same
# backend in the same run (crates/wharf-blobstore/examples/blob_native.rs: the same buffer sizes):
# on `fs`, a Rust file write (synced, as the store syncs before its rename) and read in the same
# directory; on `s3`, object_store's S3 client (the crate the store uses) against the same moto
# server. Prints a Markdown table (medians of ROUNDS rounds, and the wharf process's peak RSS,
# the largest over the rounds) for BENCHMARKS.md.
# Usage: bench/blobstore.sh [MIB] (default 256). ROUNDS (default 5). BASE_BIN=<older wharf>
# measures that binary too, alternating with WHARF_BIN round by round (same guest, same native
# peer). BACKENDS (default "fs s3"). PROFILE=dev uses debug builds (a quick check that the script
# works; never for figures); GUEST_TARGET_DIR reuses a guest build dir. moto comes from
# <repo>/.venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mib=${1:-256}
rounds=${ROUNDS:-5}
backends=${BACKENDS:-fs s3}
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
if [ "$profile" = release ]; then
    flags=(--release) dir=release
else
    flags=() dir=debug
fi
[ -n "${WHARF_BIN:-}" ] || cargo build --quiet "${flags[@]}" --locked -p wharf
cargo build --quiet "${flags[@]}" --locked -p wharf-blobstore --example blob_native
guests=${GUEST_TARGET_DIR:-$target/bench-guests}
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml \
    --bin blob_store --target-dir "$guests"
guest="$guests/wasm32-wasip2/release/blob_store.wasm"
wharf=${WHARF_BIN:-$target/$dir/wharf}
native="$target/$dir/examples/blob_native"
python="$root/.venv/bin/python"
[ -x "$python" ] || { echo "no $python: run scripts/setup.sh (moto)" >&2; exit 1; }

tmp=$(mktemp -d)
moto_pid=
cleanup() {
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null && break
    sleep 0.2
done
curl -fs -X PUT "http://127.0.0.1:$port/bench" >/dev/null

mkdir -p "$tmp/fs" "$tmp/data"
cat >"$tmp/runtime.toml" <<EOF
[blobstore.stores.fs]
type = "fs"
path = "fs"

[blobstore.stores.s3]
type = "s3"
endpoint = "http://127.0.0.1:$port"
bucket = "bench"
access_key_id = "bench"
secret_access_key = "bench"
EOF
export WHARF_CACHE_DIR="$tmp/cache" WHARF_DATA_DIR="$tmp/data"
# "write-ms W read-ms R" -> MB/s for MIB MiB.
mbps() { awk -v mib="$mib" -v ms="$1" 'BEGIN { printf "%.0f", (ms > 0) ? mib * 1.048576 / (ms / 1000) : 0 }'; }
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", (b > 0) ? 100 * a / b : 0 }'; }

bins=("$wharf")
[ -n "${BASE_BIN:-}" ] && bins+=("$BASE_BIN")
for bin in "${bins[@]}"; do "$bin" compile "$guest" >/dev/null; done
names=()
for bin in "${bins[@]}"; do names+=("$(basename "$bin")"); done

echo "blobstore, $mib MiB object, $rounds rounds (medians; peak RSS the largest), $(nproc) cores, $(uname -sr), profile $profile"
echo
echo "| backend | wharf | guest write MB/s | native write MB/s | write ratio | guest read MB/s | native read MB/s | read ratio | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for backend in $backends; do
    declare -A gw=() gr=() rss=()
    nw=() nr=()
    for _ in $(seq "$rounds"); do
        for i in "${!bins[@]}"; do
            out=$(/usr/bin/time -f "rss-kib %M" "${bins[$i]}" run --runtime-config "$tmp/runtime.toml" --blob "bench=$backend" \
                "$guest" bench bench "$mib" 2>&1)
            gw[$i]+=" $(mbps "$(echo "$out" | field write-ms)")"
            gr[$i]+=" $(mbps "$(echo "$out" | field read-ms)")"
            rss[$i]+=" $(echo "$out" | field rss-kib)"
        done
        if [ "$backend" = fs ]; then
            out=$("$native" fs "$tmp/fs" "$mib")
        else
            out=$("$native" s3 "http://127.0.0.1:$port" bench "$mib")
        fi
        nw+=("$(mbps "$(echo "$out" | field write-ms)")")
        nr+=("$(mbps "$(echo "$out" | field read-ms)")")
    done
    mnw=$(printf '%s\n' "${nw[@]}" | median) mnr=$(printf '%s\n' "${nr[@]}" | median)
    for i in "${!bins[@]}"; do
        mgw=$(echo ${gw[$i]} | tr ' ' '\n' | median) mgr=$(echo ${gr[$i]} | tr ' ' '\n' | median)
        peak=$(echo ${rss[$i]} | tr ' ' '\n' | sort -n | tail -1)
        echo "| $backend | ${names[$i]} | $mgw | $mnw | $(ratio "$mgw" "$mnw") | $mgr | $mnr | $(ratio "$mgr" "$mnr") | $((peak / 1024)) |"
    done
    [ -n "${VERBOSE:-}" ] && for i in "${!bins[@]}"; do
        echo "  ${names[$i]} $backend write:${gw[$i]} read:${gr[$i]} rss-kib:${rss[$i]}; native write: ${nw[*]} read: ${nr[*]}" >&2
    done
    unset gw gr rss
done
