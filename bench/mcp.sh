#!/usr/bin/env bash
# MCP latency with a real client (the Python SDK in .venv, from scripts/setup.sh): p50/p99 of
# N (default 1000) calls of a trivial tool (`add`) over stdio and streamable HTTP, for `wharf
# mcp` (a fresh sandboxed instance per call) and for the same tool in a plain Python FastMCP
# server (no sandbox) measured by the same client in the same run; then `tools/list` with 1
# and 50 components loaded, through the SDK and with bare JSON-RPC, beside the peer offering
# as many tools.
source "$(dirname "$0")/common.sh"
n=${1:-1000}
py=$root/.venv/bin/python
[ -x "$py" ] || { echo "run scripts/setup.sh first (.venv with the mcp SDK)" >&2; exit 1; }
client=$root/bench/mcp_client.py
types=$GUESTS/mcp_types.wasm
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/mcp" && return 0; sleep 0.1; done; return 1; }
export WHARF_LOG=warn

echo "== stdio, $n calls"
"$py" "$client" stdio "$n" mcp_types.add '{"a":1,"b":2}' -- "$WHARF" mcp "$types"
"$py" "$client" stdio "$n" add '{"a":1,"b":2}' -- "$py" "$root/bench/mcp_peer.py" stdio

echo "== streamable HTTP, $n calls"
"$WHARF" mcp --http 127.0.0.1:18091 "$types" 2> /dev/null & wharf_pid=$!
"$py" "$root/bench/mcp_peer.py" http 18092 > /dev/null 2>&1 & peer_pid=$!
trap 'kill $wharf_pid $peer_pid 2> /dev/null' EXIT
wait_up 18091 && wait_up 18092
"$py" "$client" http "$n" mcp_types.add '{"a":1,"b":2}' http://127.0.0.1:18091/mcp
"$py" "$client" http "$n" add '{"a":1,"b":2}' http://127.0.0.1:18092/mcp

echo "== tools/list with 50 components (copies of mcp_types under 50 names) vs 1"
many=$(mktemp -d)
for i in $(seq -w 1 50); do cp "$types" "$many/tools$i.wasm"; done
"$py" "$client" stdio 100 tools01.add '{"a":1,"b":2}' -- "$WHARF" mcp "$many/tools01.wasm"
"$py" "$client" stdio 100 tools01.add '{"a":1,"b":2}' -- "$WHARF" mcp "$many"/*.wasm
echo "== the same without the SDK (bare JSON-RPC over stdio)"
"$py" "$client" raw-list 200 -- "$WHARF" mcp "$many/tools01.wasm"
"$py" "$client" raw-list 200 -- "$WHARF" mcp "$many"/*.wasm
tools=$("$py" "$client" raw-list 1 -- "$WHARF" mcp "$many"/*.wasm | sed -n 's/.*(\([0-9]*\) tools.*/\1/p')
echo "== the peer with the same number of tools ($tools copies of add)"
"$py" "$client" raw-list 200 -- "$py" "$root/bench/mcp_peer.py" stdio 10
"$py" "$client" raw-list 200 -- "$py" "$root/bench/mcp_peer.py" stdio "$tools"
rm -rf "$many"
