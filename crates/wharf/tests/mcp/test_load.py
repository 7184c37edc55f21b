"""`--allow-load`: off by default; when on, `wharf.load`/`wharf.unload`/`wharf.list` change the
tool list (with `notifications/tools/list_changed`), and a loaded component runs under the
server's policy: the client cannot pick a policy file or any other grant."""
import os
import tempfile

import pytest
from mcp.shared.exceptions import MCPError as McpError

from mcp_util import HttpServer, component, http_session, run, stdio_session


def names(tools):
    return sorted(t.name for t in tools.tools)


def test_loading_is_off_by_default():
    async def body():
        async with stdio_session([component("MCP_DOCS")]) as s:
            assert not any(n.startswith("wharf.") for n in names(await s.session.list_tools()))
            with pytest.raises(McpError, match="unknown tool"):
                await s.session.call_tool("wharf.load", {"source": component("MCP_TYPES")})

    run(body)


def test_load_list_unload_under_the_server_policy():
    async def body():
        # A policy file that would grant everything, for the client to try to smuggle in.
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('allow_net = ["*"]\ntimeout = "1h"\n')
        changed = []
        try:
            where = os.path.dirname(component("MCP_TYPES"))
            async with stdio_session([component("MCP_DOCS")], ["--allow-load", where, "--timeout", "1s"]) as s:
                inner = s.session._message_handler

                async def handler(message):
                    if "list_changed" in repr(message):
                        changed.append(message)
                    await inner(message)

                s.session._message_handler = handler
                before = names(await s.session.list_tools())
                assert {"wharf.load", "wharf.unload", "wharf.list"} <= set(before)

                smuggled = await s.session.call_tool("wharf.load", {"source": f"{component('MCP_TYPES')}::{f.name}"})
                assert smuggled.is_error and "cannot load" in smuggled.content[0].text
                # Only the --allow-load directory, regular files only, no probing outside it.
                link = os.path.join(where, "wharf-test-escape.wasm")
                if not os.path.lexists(link):
                    os.symlink("/etc/passwd", link)
                for outside in ["/etc/passwd", "/dev/zero", "/no/such/file.wasm", link, f"{where}/../x.wasm",
                                "127.0.0.1:9/internal:v1", "http://127.0.0.1:9/internal:v1"]:
                    bad = await s.session.call_tool("wharf.load", {"source": outside})
                    assert bad.is_error and "not under any --allow-load location" in bad.content[0].text, (outside, bad)
                os.unlink(link)
                pinned = await s.session.call_tool("wharf.unload", {"component": "mcp_docs"})
                assert pinned.is_error and "given on the command line" in pinned.content[0].text

                loaded = await s.session.call_tool("wharf.load", {"source": component("MCP_TYPES")})
                assert not loaded.is_error, loaded
                assert loaded.structured_content["result"]["name"] == "mcp_types"
                assert "mcp_types.add" in names(await s.session.list_tools())
                assert (await s.session.call_tool("mcp_types.add", {"a": 2, "b": 2})).structured_content == {"result": 4}
                # The server's --timeout applies, not anything the client asked for.
                spin = await s.session.call_tool("mcp_types.types.spin", {})
                assert spin.is_error and "timed out after 1s" in spin.content[0].text

                listed = await s.session.call_tool("wharf.list", {})
                assert [c["name"] for c in listed.structured_content["result"]] == ["mcp_docs", "mcp_types"]
                gone = await s.session.call_tool("wharf.unload", {"component": "mcp_types"})
                assert gone.structured_content == {"result": True}
                assert names(await s.session.list_tools()) == before
                with pytest.raises(McpError, match="unknown tool"):
                    await s.session.call_tool("mcp_types.add", {"a": 2, "b": 2})
                assert len(changed) == 2, f"expected a list_changed per load and unload, got {changed}"
                s.assert_clean()
        finally:
            os.unlink(f.name)

    run(body)


def listener(session, changed: list):
    """Counts `notifications/tools/list_changed` reaching `session`."""
    inner = session.session._message_handler

    async def handler(message):
        if "list_changed" in repr(message):
            changed.append(message)
        await inner(message)

    session.session._message_handler = handler


def test_loaded_tools_belong_to_the_loading_session():
    """Two clients at once on one HTTP server: what one loads, the other neither sees, calls nor
    unloads; neither can unload a command-line component; each may load the same file under
    the same name; only the loading client hears list_changed."""

    async def body():
        where = os.path.dirname(component("MCP_TYPES"))
        server = HttpServer([component("MCP_DOCS")], ["--allow-load", where])
        try:
            async with http_session(server) as a, http_session(server) as b:
                heard_a, heard_b = [], []
                listener(a, heard_a)
                listener(b, heard_b)
                before = names(await b.session.list_tools())
                loaded = await a.session.call_tool("wharf.load", {"source": component("MCP_TYPES")})
                assert not loaded.is_error, loaded
                assert "mcp_types.add" in names(await a.session.list_tools())
                # B sees nothing of it, cannot call it, cannot unload it (nor learn that it exists).
                assert names(await b.session.list_tools()) == before
                with pytest.raises(McpError, match="unknown tool"):
                    await b.session.call_tool("mcp_types.add", {"a": 1, "b": 1})
                listed = await b.session.call_tool("wharf.list", {})
                assert [c["name"] for c in listed.structured_content["result"]] == ["mcp_docs"]
                theirs = await b.session.call_tool("wharf.unload", {"component": "mcp_types"})
                assert theirs.is_error and "no component named `mcp_types` is loaded" in theirs.content[0].text, theirs
                for s in (a, b):
                    pinned = await s.session.call_tool("wharf.unload", {"component": "mcp_docs"})
                    assert pinned.is_error and "given on the command line" in pinned.content[0].text, pinned
                assert (await a.session.call_tool("mcp_types.add", {"a": 2, "b": 3})).structured_content == {"result": 5}
                # B loads the same file: its own copy, under the same name (no `-2` leaking A's load).
                mine = await b.session.call_tool("wharf.load", {"source": component("MCP_TYPES")})
                assert mine.structured_content["result"]["name"] == "mcp_types", mine
                gone = await a.session.call_tool("wharf.unload", {"component": "mcp_types"})
                assert gone.structured_content == {"result": True}
                with pytest.raises(McpError, match="unknown tool"):
                    await a.session.call_tool("mcp_types.add", {"a": 1, "b": 1})
                assert (await b.session.call_tool("mcp_types.add", {"a": 4, "b": 4})).structured_content == {"result": 8}
                assert (await a.session.call_tool("mcp_docs.greet", {"name": "x"})).is_error is False
                assert len(heard_a) == 2 and len(heard_b) == 1, (heard_a, heard_b)
                a.assert_clean()
                b.assert_clean()
            assert server.alive()
        finally:
            server.stop()

    run(body)
