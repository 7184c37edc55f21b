#!/usr/bin/env bash
# A/B of `wharf serve` builds (for bisecting a throughput change): ROUNDS alternating rounds
# (default 3) of `wrk -t1 -c16 -d$DURATION` (default 5s, after a 1 s warm-up) against each
# binary given and `wasmtime serve -Scli`, on one guest (WASM, default http_hello.wasm) with a
# fresh compile cache per binary. Prints one line per run and the median of each server.
# Usage: flock -x /tmp/wharf-quiet.lock bash bench/serve-ab.sh BIN...   (build beforehand)
set -euo pipefail
# With RUST_BACKTRACE set, wasmtime 48 captures a backtrace on every Store drop.
unset RUST_BACKTRACE
wasm=${WASM:?set WASM to the guest .wasm}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
peer=${WASMTIME:-/opt/peers/bin/wasmtime}
port=18091
pids=()
caches=()
trap 'kill "${pids[@]}" 2> /dev/null || true; rm -rf "${caches[@]}"' EXIT
wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/" > /dev/null && return 0; sleep 0.1; done; echo "server did not come up" >&2; return 1; }
declare -A cache results
for bin in "$@"; do cache[$bin]=$(mktemp -d); caches+=("${cache[$bin]}"); done
run() { # LABEL COMMAND...
  local label=$1; shift
  "$@" > /dev/null 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_up
  wrk -t1 -c16 -d1s "http://127.0.0.1:$port/" > /dev/null
  local out rps p99
  out=$(wrk -t1 -c16 -d"$duration" --latency "http://127.0.0.1:$port/")
  rps=$(echo "$out" | awk '/Requests\/sec/ { printf "%d", $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
  kill "$pid"; wait "$pid" 2> /dev/null || true
  echo "$label $rps p99=$p99"
  results[$label]+="$rps "
}
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    run "$bin" env WHARF_CACHE_DIR="${cache[$bin]}" "$bin" serve --listen "127.0.0.1:$port" "$wasm"
  done
  run peer "$peer" serve -Scli --addr "127.0.0.1:$port" "$wasm"
done
echo "== medians ($(basename "$wasm"), $rounds rounds of $duration)"
for label in "$@" peer; do
  echo "$label $(echo "${results[$label]}" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
