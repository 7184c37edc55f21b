#!/usr/bin/env bash
# Requests/s and latency of hello HTTP servers, all in one run, each with the same wrk shape
# (wrk -t1 -c16 -d$DURATION, after a 1 s warm-up) on 127.0.0.1, one server at a time:
#  (a) WASI 0.2: `wharf serve` vs `wasmtime serve -Scli` on crates/test-programs `http_hello`,
#      both with a fresh instance per request (the default of each for 0.2);
#  (b) WASI 0.3: `wharf serve` (instance reuse on: its 0.3 default) vs `wasmtime serve -Scli`
#      with its 0.3 defaults (reuse 128, concurrent reuse 16) on crates/test-programs `p3_http`;
#  (c) a native hyper server (bench/native-hello, release build), the physical limit.
# Prints Markdown tables for BENCHMARKS.md, with each server's ratio to its peer and to native.
source "$(dirname "$0")/common.sh"
p2_wasm=$GUESTS/http_hello.wasm
p3_wasm=$GUESTS/p3_http.wasm
duration=${DURATION:-10s}
cargo build --quiet --release --locked --manifest-path bench/native-hello/Cargo.toml
NATIVE=$root/bench/native-hello/target/release/native-hello
results=$(mktemp)
pids=()
trap 'kill "${pids[@]}" 2> /dev/null || true; rm -f "$results"' EXIT

wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/" > /dev/null && return 0; sleep 0.1; done; echo "server on port $1 did not come up" >&2; return 1; }
to_ms() { # wrk latency (e.g. 812.00us, 1.37ms, 2.01s) -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
# bench KEY LABEL PORT: one wrk run against a server already up; appends "KEY|LABEL|rps|p50|p99|errors".
bench() {
  local out
  wrk -t1 -c16 -d1s "http://127.0.0.1:$3/" > /dev/null   # warm up
  out=$(wrk -t1 -c16 -d"$duration" --latency "http://127.0.0.1:$3/")
  echo "== $2" >&2
  echo "$out" | grep -E "Requests/sec|  50%|  99%|requests in|Non-2xx|Socket errors" >&2
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  errors=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { n += 1 } END { print n + 0 }')
  echo "$1|$2|$rps|$p50|$p99|$errors" >> "$results"
}
# serve_one KEY LABEL PORT COMMAND...: starts a server, measures it, stops it (one at a time,
# so no server competes with another for the 2 cores).
serve_one() {
  local key=$1 label=$2 port=$3
  shift 3
  "$@" > /dev/null 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_up "$port"
  bench "$key" "$label" "$port"
  kill "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null || true
}

serve_one p2-wharf "\`wharf serve\` (access log on, to /dev/null)" 18081 \
  "$WHARF" serve --listen 127.0.0.1:18081 "$p2_wasm"
serve_one p2-wasmtime "\`wasmtime serve -Scli\` ($($WASMTIME --version | awk '{print $2}'))" 18082 \
  "$WASMTIME" serve -Scli --addr 127.0.0.1:18082 "$p2_wasm"
serve_one p3-wharf "\`wharf serve\` (0.3, reuse on)" 18081 \
  "$WHARF" serve --listen 127.0.0.1:18081 "$p3_wasm"
serve_one p3-wasmtime "\`wasmtime serve -Scli\` (0.3 defaults, $($WASMTIME --version | awk '{print $2}'))" 18082 \
  "$WASMTIME" serve -Scli --addr 127.0.0.1:18082 "$p3_wasm"
serve_one native "native hyper (\`bench/native-hello\`)" 18083 "$NATIVE" 127.0.0.1:18083

field() { awk -F'|' -v k="$1" -v f="$2" '$1 == k { print $f }' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
row() { # KEY RATIO
  printf '| %s | %s | %'"'"'d | %s ms | %s ms | %s |\n' "$(date -u +%F)" "$(field "$1" 2)" "$(field "$1" 3 | cut -d. -f1)" \
    "$(field "$1" 4)" "$(field "$1" 5)" "$2"
}
table() { # TITLE WHARF_KEY PEER_KEY
  echo
  echo "### $1 (wrk -t1 -c16 -d$duration)"
  echo
  echo "| date | server | req/s | p50 | p99 | ratio |"
  echo "|---|---|---|---|---|---|"
  row "$2" "**$(ratio "$(field "$2" 3)" "$(field "$3" 3)")**"
  row "$3" "1.00"
  echo
  echo "p99 wharf/peer: $(ratio "$(field "$2" 5)" "$(field "$3" 5)") (lower is better); errors: wharf $(field "$2" 6), peer $(field "$3" 6)"
}
table "WASI 0.2 hello, a fresh instance per request" p2-wharf p2-wasmtime
table "WASI 0.3 hello, instance reuse on (both servers' 0.3 defaults)" p3-wharf p3-wasmtime
echo
echo "### Against a native hyper server (same box, same wrk run shape)"
echo
echo "| date | server | req/s | p50 | p99 | share of native req/s |"
echo "|---|---|---|---|---|---|"
for key in native p2-wharf p2-wasmtime p3-wharf p3-wasmtime; do
  row "$key" "$(ratio "$(field "$key" 3)" "$(field native 3)")"
done
