#!/usr/bin/env bash
# Message triggers: messages/s through a trivial handler (msg_handler's `work.*` branch: publish
# the payload to `done.<payload>`), a fresh instance per message under `wharf serve`, beside a
# native async-nats subscriber doing the same work (bench/messaging, its own Cargo project), in
# the same run against the same nats-server on 127.0.0.1; then end-to-end latency, one message
# at a time: publish -> handler -> the handler's message back at the driver.
# Usage: bench/messaging.sh build, then WHARF_BIN=path bench/messaging.sh [N] [M] (default 20000
# messages for throughput, 2000 for latency). Without WHARF_BIN it builds everything first.
# Keep N under 65536 (a core NATS subscription's buffer: beyond it messages are dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
# BENCH_PROFILE=dev only proves the script runs (debug builds); figures come from release.
profile=${BENCH_PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
guest="$target/bench-guests/wasm32-wasip2/$dir/msg_handler.wasm"
tools="$target/bench-messaging/$dir"
build() { # the guest and the driver/peer (and wharf unless WHARF_BIN names it)
    [ -n "${WHARF_BIN:-}" ] || cargo build --quiet --profile "$profile" --locked -p wharf
    cargo build --quiet --profile "$profile" --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml \
        --bin msg_handler --target-dir "$target/bench-guests"
    cargo build --quiet --profile "$profile" --locked --manifest-path bench/messaging/Cargo.toml --target-dir "$target/bench-messaging"
}
# `bench/messaging.sh build` builds only (under the shared lock); a measuring run with
# WHARF_BIN set builds nothing, so it can hold the exclusive lock without compiling.
if [ "${1:-}" = build ]; then build; exit 0; fi
if [ -z "${WHARF_BIN:-}" ]; then build; fi
for f in "$guest" "$tools/driver" "$tools/native_handler"; do
    [ -e "$f" ] || { echo "$f is missing: run bench/messaging.sh build first" >&2; exit 1; }
done
n=${1:-20000}
m=${2:-2000}
wharf=${WHARF_BIN:-$target/$dir/wharf}
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
tmp=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="nats://127.0.0.1:$port"
"$nats_server" -a 127.0.0.1 -p "$port" >"$tmp/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

cat >"$tmp/wharf.toml" <<TOML
[[trigger.messaging]]
subject = "work.*"
component = "handler"
[component.handler]
source = "$guest"
messaging_subscribe = ["work.*"]
messaging_publish = ["done.>"]
TOML
printf '[messaging.stores.default]\ntype = "nats"\nurl = "%s"\n' "$url" >"$tmp/runtime.toml"
export WHARF_CACHE_DIR="$tmp/cache"

run() { # label command...: the handler in the background, the driver against it
    "${@:2}" >"$tmp/$1.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    "$tools/driver" "$url" "$n" "$m" >"$tmp/$1.out"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local got
    got=$(awk '{ print $4 }' "$tmp/$1.out")
    [ "$got" = "$n" ] || echo "warning: $1 answered $got of $n messages" >&2
}
run wharf "$wharf" serve --listen 127.0.0.1:0 --runtime-config "$tmp/runtime.toml" "$tmp/wharf.toml"
run native "$tools/native_handler" "$url"
read -r w_rate w_p50 w_p99 _ <"$tmp/wharf.out"
read -r n_rate n_p50 n_p99 _ <"$tmp/native.out"

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
echo "N=$n (throughput), M=$m (latency, one at a time), $profile build, $(nproc) cores, $(uname -sr), $($nats_server --version)"
echo
echo "| handler | messages/s | p50 latency (ms) | p99 latency (ms) |"
echo "|---|---:|---:|---:|"
echo "| wharf serve, [[trigger.messaging]], fresh instance per message | $w_rate | $(ms "$w_p50") | $(ms "$w_p99") |"
echo "| native async-nats subscriber (same work) | $n_rate | $(ms "$n_p50") | $(ms "$n_p99") |"
echo "| wharf / native | $(ratio "$w_rate" "$n_rate") | $(ratio "$w_p50" "$n_p50") | $(ratio "$w_p99" "$n_p99") |"
