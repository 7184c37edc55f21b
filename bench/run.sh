#!/usr/bin/env bash
# Warm start of a hello command: `wharf run` vs `wasmtime run`, whole process, same run.
# Both use their compile caches (wharf's is on by default; wasmtime's with -C cache=y).
source "$(dirname "$0")/common.sh"
"$WHARF" run "$HELLO_CMD" > /dev/null        # fill the caches
"$WASMTIME" run -C cache=y "$HELLO_CMD" > /dev/null
hyperfine -N --warmup 5 --runs ${RUNS:-200} --export-markdown /dev/stdout \
  "$WHARF run $HELLO_CMD" \
  "$WASMTIME run -C cache=y $HELLO_CMD"
