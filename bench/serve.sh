#!/usr/bin/env bash
# Requests/s and latency of the hello wasi:http component: `wharf serve` vs `wasmtime serve
# -Scli`, the same .wasm, wrk -t1 -c16 -d10s against each in turn on 127.0.0.1.
source "$(dirname "$0")/common.sh"
wasm=$GUESTS/http_hello.wasm
duration=${DURATION:-10s}
wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/" > /dev/null && return 0; sleep 0.1; done; return 1; }
bench() { # name port
  curl -sf "http://127.0.0.1:$2/" > /dev/null
  wrk -t1 -c16 -d1s "http://127.0.0.1:$2/" > /dev/null   # warm up
  echo "== $1"
  wrk -t1 -c16 -d"$duration" --latency "http://127.0.0.1:$2/" | grep -E "Requests/sec|Latency|  50%|  99%|requests in|Non-2xx"
}
"$WHARF" serve --listen 127.0.0.1:18081 "$wasm" 2> /dev/null & wharf_pid=$!
"$WASMTIME" serve -Scli --addr 127.0.0.1:18082 "$wasm" > /dev/null 2>&1 & wasmtime_pid=$!
trap 'kill $wharf_pid $wasmtime_pid 2> /dev/null' EXIT
wait_up 18081 && wait_up 18082
bench "wharf serve (access log on, to /dev/null)" 18081
bench "wasmtime serve -Scli" 18082
