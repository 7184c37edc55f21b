#!/usr/bin/env bash
# Warm start of a hello command: `wharf run` vs `wasmtime run`, whole process, same hyperfine run.
# Both use their compile caches (wharf's is on by default; wasmtime's with -C cache=y). Prints a
# Markdown table. RUNS=200.
source "$(dirname "$0")/common.sh"
"$WHARF" run "$HELLO_CMD" > /dev/null        # fill the caches
"$WASMTIME" run -C cache=y "$HELLO_CMD" > /dev/null
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
table=$(mktemp)
trap 'rm -f "$table"' EXIT
hyperfine -N --warmup 5 --runs "${RUNS:-200}" --style basic --export-markdown "$table" \
  -n "wharf run hello.wasm" "$WHARF run $HELLO_CMD" \
  -n "wasmtime run -C cache=y hello.wasm" "$WASMTIME run -C cache=y $HELLO_CMD" >&2
cat "$table"
