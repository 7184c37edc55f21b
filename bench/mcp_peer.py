"""The peer for bench/mcp.sh: the same `add` tool as a plain Python MCP server (the SDK's
FastMCP), no sandbox. `python bench/mcp_peer.py stdio [TOOLS]` or `... http PORT`; with TOOLS,
the server offers `add` under that many names (`add`, `add2`, ...) for the tools/list figure."""
import sys

from mcp.server.fastmcp import FastMCP

mode = sys.argv[1]
mcp = FastMCP("peer", port=int(sys.argv[2]) if mode == "http" else 8000, log_level="WARNING")


def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


copies = int(sys.argv[2]) if mode == "stdio" and len(sys.argv) > 2 else 1
for i in range(1, copies + 1):
    mcp.add_tool(add, name="add" if i == 1 else f"add{i}")

mcp.run(transport="stdio" if mode == "stdio" else "streamable-http")
