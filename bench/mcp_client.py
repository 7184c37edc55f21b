"""MCP call latency from a real client, the Python `mcp` SDK (2.x, `Client` in its default `auto`
mode: `server/discover`, falling back to `initialize` only for a server without it). Used by
bench/mcp.sh; prints one JSON line per run, which `table` turns into Markdown.

    python bench/mcp_client.py run LABEL stdio N CLIENTS TOOL ARGS_JSON -- COMMAND...
    python bench/mcp_client.py run LABEL http  N CLIENTS TOOL ARGS_JSON URL
    python bench/mcp_client.py table RESULTS.jsonl
    python bench/mcp_client.py raw-list N LABEL -- COMMAND...

`raw-list` times `tools/list` over stdio with bare JSON-RPC lines and no SDK, so the figure is
the server's (and the pipe's), not the SDK's validation of every tool.

CLIENTS clients (their own connection each) call TOOL N times each, concurrently; every call is
timed, after a warm-up of 50 calls per client.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import anyio
from mcp import StdioServerParameters
from mcp.client.client import Client

WARMUP = 50


def percentile(samples, q):
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(q * len(samples)))]


async def one_client(target, n, tool, args, samples, versions):
    async with Client(target) as client:
        versions.add(client.protocol_version)
        for _ in range(WARMUP):
            await client.call_tool(tool, args)
        for _ in range(n):
            started = time.perf_counter()
            result = await client.call_tool(tool, args)
            samples.append(time.perf_counter() - started)
            assert not result.is_error, result


async def run(label, transport, n, clients, tool, args, rest):
    samples, versions = [], set()

    def target():
        if transport == "stdio":
            # The SDK passes only a few variables to the server by default; WHARF_LOG must get through.
            return StdioServerParameters(command=rest[0], args=rest[1:], env=dict(os.environ))
        return rest[0]

    async with anyio.create_task_group() as group:
        for _ in range(clients):
            group.start_soon(one_client, target(), n, tool, args, samples, versions)
    print(json.dumps({
        "label": label, "client": "Python SDK", "transport": transport, "clients": clients, "calls": len(samples),
        "protocol": "/".join(sorted(versions)), "p50_ms": percentile(samples, 0.50) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000, "mean_ms": statistics.mean(samples) * 1000,
        # Throughput while measuring (connects and warm-up excluded): clients / mean latency.
        "calls_per_s": clients * 1000 / (statistics.mean(samples) * 1000),
    }), flush=True)


def table(path):
    """Markdown: one row per (client, transport, clients), wharf beside the peer, with ratios."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    keys = []
    for row in rows:
        key = (row["client"], row["transport"], row["clients"])
        if key not in keys:
            keys.append(key)
    by = {(r["label"], r["client"], r["transport"], r["clients"]): r for r in rows}
    print("| client | transport | clients x calls | wharf p50 / p99 (ms) | peer p50 / p99 (ms) | p50 ratio | "
          "p99 ratio | wharf calls/s | peer calls/s | protocol (wharf, peer) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for client, transport, clients in keys:
        w, p = by.get(("wharf", client, transport, clients)), by.get(("peer", client, transport, clients))
        if not w or not p:
            continue
        ratio = lambda a, b: f"{a / b:.2f}x" if b else "-"
        print(f"| {client} | {transport} | {clients} x {w['calls'] // clients} | {w['p50_ms']:.3f} / {w['p99_ms']:.3f} "
              f"| {p['p50_ms']:.3f} / {p['p99_ms']:.3f} | {ratio(w['p50_ms'], p['p50_ms'])} "
              f"| {ratio(w['p99_ms'], p['p99_ms'])} | {w['calls_per_s']:.0f} | {p['calls_per_s']:.0f} "
              f"| {w['protocol']}, {p['protocol']} |")
    print()
    print("Ratios are wharf / peer: below 1 means wharf is faster. The peer is the Python SDK's own "
          "server (FastMCP, `MCPServer` in SDK 2.x) with the same `add` tool, unsandboxed. calls/s = clients / mean latency, connects and warm-up excluded.")


def raw_list(n, label, command):
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def request(id, method, params):
        server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode() + b"\n")
        server.stdin.flush()
        return server.stdout.readline()

    client = {"name": "raw", "version": "0"}
    request(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client})
    server.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    samples = []
    for id in range(1, n + 1):
        started = time.perf_counter()
        line = request(id, "tools/list", {})
        samples.append(time.perf_counter() - started)
        # Checked outside the timing: parsing 0.5 MB here costs as much as the server's reply.
        assert json.loads(line)["id"] == id, line[:200]
    tools = len(json.loads(line)["result"]["tools"])
    samples = samples[min(10, n // 2):]
    print(f"| {label} | {tools} | {len(line) // 1024} KB "
          f"| {percentile(samples, 0.5) * 1000:.3f} ms | {percentile(samples, 0.99) * 1000:.3f} ms |")
    server.stdin.close()
    server.wait()


def main():
    if sys.argv[1] == "table":
        return table(sys.argv[2])
    if sys.argv[1] == "raw-list":
        return raw_list(int(sys.argv[2]), sys.argv[3], sys.argv[sys.argv.index("--") + 1 :])
    _, _, label, transport, n, clients, tool, args, *rest = sys.argv
    if rest and rest[0] == "--":
        rest = rest[1:]
    anyio.run(run, label, transport, int(n), int(clients), tool, json.loads(args), rest)


main()
