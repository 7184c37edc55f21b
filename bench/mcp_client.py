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
    """Markdown: one row per (client, transport, clients), wharf beside the peer (and beside
    `base`, an older wharf, when the run has one), with ratios; then the HTTP - stdio gap of p50
    per client, and the client's own floor (`raw-json`, `raw-sse`: bench/mcp_raw_server.py)."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    keys = []
    for row in rows:
        key = (row["client"], row["transport"], row["clients"])
        if key not in keys and row["label"] in ("wharf", "peer"):
            keys.append(key)
    by = {(r["label"], r["client"], r["transport"], r["clients"]): r for r in rows}
    has_base = any(r["label"] == "base" for r in rows)
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "-"
    pp = lambda r: f"{r['p50_ms']:.3f} / {r['p99_ms']:.3f}" if r else "-"
    base_head = "base p50 / p99 (ms) | wharf/base p50 | " if has_base else ""
    print(f"| client | transport | clients x calls | wharf p50 / p99 (ms) | {base_head}peer p50 / p99 (ms) | "
          "wharf/peer p50 | wharf/peer p99 | wharf calls/s | peer calls/s | protocol (wharf, peer) |")
    print("|---|---|---|---|" + ("---|---|" if has_base else "") + "---|---|---|---|---|---|")
    for client, transport, clients in keys:
        w, p = by.get(("wharf", client, transport, clients)), by.get(("peer", client, transport, clients))
        b = by.get(("base", client, transport, clients))
        if not w or not p:
            continue
        base_cells = f"{pp(b)} | {ratio(w['p50_ms'], b['p50_ms']) if b else '-'} | " if has_base else ""
        print(f"| {client} | {transport} | {clients} x {w['calls'] // clients} | {pp(w)} | {base_cells}{pp(p)} "
              f"| {ratio(w['p50_ms'], p['p50_ms'])} | {ratio(w['p99_ms'], p['p99_ms'])} "
              f"| {w['calls_per_s']:.0f} | {p['calls_per_s']:.0f} | {w['protocol']}, {p['protocol']} |")
    print()
    print("Ratios below 1 mean wharf is faster. The peer is the Python SDK's own server (FastMCP, `MCPServer` in "
          "SDK 2.x) with the same `add` tool, unsandboxed. calls/s = clients / mean latency, connects and warm-up "
          "excluded." + (" `base` is the wharf binary named by WHARF_BASE, measured in the same run." if has_base else ""))
    print()
    print("HTTP p50 - stdio p50, 1 client (issue 16's goal: under 1 ms):")
    print()
    labels = [label for label in ("wharf", "base", "peer") if any(r["label"] == label for r in rows)]
    print("| client | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for client in dict.fromkeys(r["client"] for r in rows):
        cells = []
        for label in labels:
            http, stdio = by.get((label, client, "http", 1)), by.get((label, client, "stdio", 1))
            cells.append(f"{http['p50_ms'] - stdio['p50_ms']:.3f} ms" if http and stdio else "-")
        print(f"| {client} | " + " | ".join(cells) + " |")
    raw = [r for r in rows if r["label"].startswith("raw-")]
    if raw:
        print()
        print("The clients' own floor over HTTP: the same calls against bench/mcp_raw_server.py, which replays "
              "the result of the first call with one asyncio write (`raw-json`: `application/json`; `raw-sse`: "
              "rmcp's SSE framing, a priming event then the response, chunked):")
        print()
        print("| client | reply | p50 / p99 (ms) | calls/s |")
        print("|---|---|---|---|")
        for r in raw:
            print(f"| {r['client']} | {r['label'][4:]} | {pp(r)} | {r['calls_per_s']:.0f} |")


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
