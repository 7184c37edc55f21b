"""MCP latency from a real client (the Python `mcp` SDK): p50/p99 of N calls of one tool over
stdio or streamable HTTP, and of `tools/list`. Used by bench/mcp.sh; prints one line per figure.

    python bench/mcp_client.py stdio N TOOL ARGS_JSON -- COMMAND...
    python bench/mcp_client.py http N TOOL ARGS_JSON URL
    python bench/mcp_client.py raw-list N -- COMMAND...

`raw-list` times `tools/list` over stdio with bare JSON-RPC lines and no SDK, so the figure is
the server's (and the pipe's), not the SDK's pydantic validation of every tool.
"""
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

WARMUP = 50


def report(label, samples):
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
    print(f"{label}: n={len(samples)} p50={p(0.50):.3f} ms p99={p(0.99):.3f} ms mean={statistics.mean(samples) * 1000:.3f} ms")


async def measure(session, n, tool, args, label):
    started = time.perf_counter()
    await session.initialize()
    print(f"{label} initialize: {(time.perf_counter() - started) * 1000:.1f} ms")
    lists = []
    for _ in range(max(n // 5, 20)):
        t = time.perf_counter()
        tools = await session.list_tools()
        lists.append(time.perf_counter() - t)
    report(f"{label} tools/list ({len(tools.tools)} tools)", lists)
    for _ in range(WARMUP):
        await session.call_tool(tool, args)
    calls = []
    for _ in range(n):
        t = time.perf_counter()
        result = await session.call_tool(tool, args)
        calls.append(time.perf_counter() - t)
        assert not result.isError, result
    report(f"{label} tools/call {tool}", calls)


def raw_list(n, command):
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
    report(f"raw stdio tools/list ({tools} tools, {len(line)} bytes)", samples[min(10, n // 2):])
    server.stdin.close()
    server.wait()


async def main():
    if sys.argv[1] == "raw-list":
        return raw_list(int(sys.argv[2]), sys.argv[sys.argv.index("--") + 1 :])
    mode, n, tool, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    if mode == "stdio":
        command = sys.argv[sys.argv.index("--") + 1 :]
        # The SDK passes only a few variables to the server by default; WHARF_LOG must get through.
        params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await measure(session, n, tool, args, "stdio")
    else:
        async with streamablehttp_client(sys.argv[5]) as (read, write, _):
            async with ClientSession(read, write) as session:
                await measure(session, n, tool, args, "http")


asyncio.run(main())
