"""The peer for bench/mcp.sh: the same `add` tool in the Python SDK's own server (FastMCP, called
`MCPServer` in SDK 2.x), no sandbox. `python bench/mcp_peer.py stdio [TOOLS]` or `... http PORT`;
with TOOLS, `add` is offered under that many names (`add`, `add2`, ...) for the tools/list figure."""
import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("peer", log_level="WARNING")


def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


copies = int(sys.argv[2]) if sys.argv[1] == "stdio" and len(sys.argv) > 2 else 1
for i in range(1, copies + 1):
    mcp.add_tool(add, name="add" if i == 1 else f"add{i}")

if sys.argv[1] == "stdio":
    mcp.run("stdio")
else:
    mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
