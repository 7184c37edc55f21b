#!/usr/bin/env bash
# Requests/s and latency of the hello wasi:http component: `wharf serve` vs `wasmtime serve
# -Scli`, the same .wasm, wrk -t1 -c16 against each in turn on 127.0.0.1, ROUNDS times
# alternating. Prints a Markdown table. DURATION=10s, ROUNDS=2.
source "$(dirname "$0")/common.sh"
wasm=$GUESTS/http_hello.wasm
duration=${DURATION:-10s}
rounds=${ROUNDS:-2}
wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/" > /dev/null && return 0; sleep 0.1; done; return 1; }
# wrk against PORT for DURATION; prints "req/s p50 p99 non2xx".
measure() {
  curl -sf "http://127.0.0.1:$1/" > /dev/null
  wrk -t1 -c16 -d1s "http://127.0.0.1:$1/" > /dev/null   # warm up
  wrk -t1 -c16 -d"$duration" --latency "http://127.0.0.1:$1/" | awk '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 }
    /^ +99%/ { p99 = $2 }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %s %s %s\n", rps, p50, p99, bad ? bad : 0 }'
}
"$WHARF" serve --listen 127.0.0.1:18081 "$wasm" 2> /dev/null & wharf_pid=$!
"$WASMTIME" serve -Scli --addr 127.0.0.1:18082 "$wasm" > /dev/null 2>&1 & wasmtime_pid=$!
trap 'kill $wharf_pid $wasmtime_pid 2> /dev/null' EXIT
wait_up 18081 && wait_up 18082
echo "wrk -t1 -c16 -d$duration, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | server | req/s | p50 | p99 | non-2xx | ratio |"
echo "|---|---|---:|---:|---:|---:|---:|"
for round in $(seq "$rounds"); do
  read -r w_rps w_p50 w_p99 w_bad < <(measure 18081)
  read -r p_rps p_p50 p_p99 p_bad < <(measure 18082)
  ratio=$(awk -v a="$w_rps" -v b="$p_rps" 'BEGIN { printf "%.2f", a / b }')
  echo "| $round | \`wharf serve\` (access log on, to /dev/null) | $w_rps | $w_p50 | $w_p99 | $w_bad | **${ratio}x** |"
  echo "| $round | \`wasmtime serve -Scli\` ($($WASMTIME --version | cut -d' ' -f2)) | $p_rps | $p_p50 | $p_p99 | $p_bad | 1.00 |"
done
