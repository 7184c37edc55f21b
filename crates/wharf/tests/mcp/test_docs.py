"""`wharf mcp` on the `mcp_docs` guest: tool descriptions come from the WIT doc comments that the
artifacts build put in the component's `package-docs` custom section."""

from __future__ import annotations

from mcp_util import component, run

DOCS = component("MCP_DOCS")
DESCRIPTIONS = {
    "mcp_docs.greet": "Greets `name` politely.",
    "mcp_docs.notes.reverse": "Reverses the characters of `text`.",
    "mcp_docs.notes.word-count": "Counts the whitespace-separated words in `text`.",
}


def test_descriptions_are_the_doc_comments(connect):
    async def body():
        async with connect(DOCS) as s:
            tools = await s.list_tools()
            assert set(tools) == set(DESCRIPTIONS), f"tool names: {sorted(tools)}"
            got = {name: (tool.description or "").strip() for name, tool in tools.items()}
            assert got == DESCRIPTIONS, f"descriptions: {got}"

    run(body)


def test_calls(connect):
    async def body():
        async with connect(DOCS) as s:
            assert await s.ok("mcp_docs.greet", {"name": "Wharf"}) == "Hello, Wharf!"
            assert await s.ok("mcp_docs.greet", {"name": ""}) == "Hello, !"
            assert await s.ok("mcp_docs.notes.reverse", {"text": "héllo 🦀"}) == "🦀 olléh"
            assert await s.ok("mcp_docs.notes.word-count", {"text": "  one two\tthree\nfour  "}) == 4
            assert await s.ok("mcp_docs.notes.word-count", {"text": ""}) == 0
            await s.error("mcp_docs.greet", {"name": 5}, "invalid arguments", "name")

    run(body)
