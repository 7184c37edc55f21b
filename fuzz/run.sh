#!/usr/bin/env bash
# Builds every cargo fuzz target, then runs each for SECONDS (default 60), one at a time, and
# prints each one's executions. Not run in CI. See README.md.
#
#   fuzz/run.sh [SECONDS]          SANITIZER=address fuzz/run.sh 300
#
# Needs `cargo install cargo-fuzz --locked`. cargo fuzz passes nightly-only flags
# (-Cpasses=sancov-module, -Zsanitizer); on a stable toolchain RUSTC_BOOTSTRAP=1 lets it.
# New corpus entries go to fuzz/work/TARGET (not the committed seeds in fuzz/corpus/TARGET);
# crashes to fuzz/artifacts/TARGET.
set -euo pipefail
seconds=${1:-60}
sanitizer=${SANITIZER:-none}
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

# json_value reads the mcp_types guest's WIT types (see fuzz_targets/json_value.rs).
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path ../crates/test-programs/Cargo.toml
cargo fuzz build --sanitizer "$sanitizer" >work.build.log 2>&1 || {
    mkdir -p work && mv work.build.log work/build.log
    echo "build failed: see fuzz/work/build.log" >&2
    exit 1
}
mkdir -p work && mv work.build.log work/build.log

status=0
for target in $(cargo fuzz list); do
    mkdir -p "work/$target"
    log="work/$target.log"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        result="no crash"
    else
        result="FAILED: see fuzz/$log, inputs in fuzz/artifacts/$target"
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$target: ${execs:-?} executions in ${seconds} s, $result"
done
exit "$status"
