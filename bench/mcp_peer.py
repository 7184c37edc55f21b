"""The peer for bench/mcp.sh: the same `add` tool as a plain Python MCP server (the SDK's
FastMCP), no sandbox. `python bench/mcp_peer.py stdio` or `... http PORT`."""
import sys

from mcp.server.fastmcp import FastMCP

mcp = FastMCP("peer", port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000, log_level="WARNING")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


mcp.run(transport="stdio" if sys.argv[1] == "stdio" else "streamable-http")
