"""Protocol 2026-07-28 (stateless: `server/discover`, no `initialize`, no sessions) with the Python
SDK's `Client` in its default `auto` mode, over stdio and streamable HTTP. Resource handles
address server-held instances: bound to the client's address, at most 16 per client, gone when
consumed or idle past `--handle-idle-timeout`. Then what a hostile client tries: guessed and
forged handles, instance exhaustion, discover floods, oversized bodies, stateless requests
against a full session table."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import StdioServerParameters
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_util import HANDLE_RE, POLICY_FLAGS, HttpServer, component, run, server_env, text_of, wharf_bin

MODERN = "2026-07-28"
TYPES, COUNTER = component("MCP_TYPES"), component("MCP_COUNTER")
C = "mcp_counter.counters."
NEW, INCREMENT, GET, FORK, MERGE, SUM = (C + n for n in ("counter.new", "counter.increment", "counter.get",
                                                          "counter.fork", "counter.merge", "sum"))
CAP = 16


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Compiles the guests first: the SDK gives `server/discover` 10 s, and a stdio server answers
    only once its components are compiled (a cold debug build can take longer)."""
    for guest in (TYPES, COUNTER, component("MCP_CONFORMANCE")):
        subprocess.run([wharf_bin(), "compile", guest], env=server_env(), check=True, capture_output=True, timeout=600)


@asynccontextmanager
async def modern(transport: str, server: HttpServer | None = None, flags: list[str] | None = None,
                 source: str | None = None):
    """A `Client` in `auto` mode: it probes `server/discover`, which must succeed (no fallback to
    `initialize`). Over HTTP from `source` (a 127.0.0.0/8 address) if given."""
    if transport == "stdio":
        target = StdioServerParameters(command=wharf_bin(), args=["mcp", *(flags or POLICY_FLAGS), TYPES, COUNTER],
                                       env=server_env())
    else:
        http = httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address=source), timeout=60)
        target = streamable_http_client(server.url, http_client=http)
    async with Client(target) as client:
        assert client.protocol_version == MODERN, f"negotiated {client.protocol_version}, not {MODERN}"
        assert client.session.discover_result is not None, "the client fell back to initialize"
        yield client


async def ok(client: Client, name: str, args: dict):
    result = await client.call_tool(name, args)
    assert not result.is_error, f"{name}({args}): {text_of(result)}"
    return (result.structured_content or {}).get("result")


async def error(client: Client, name: str, args: dict, needle: str) -> str:
    result = await client.call_tool(name, args)
    text = text_of(result)
    assert result.is_error and needle in text, f"{name}({args}) should fail with {needle!r}: {text}"
    return text


def http_server(flags: list[str] | None = None) -> HttpServer:
    return HttpServer([TYPES, COUNTER], [*POLICY_FLAGS, *(flags or [])])


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_discover_then_stateless_calls(transport):
    async def body():
        server = http_server(["--allow-load", os.path.dirname(TYPES)]) if transport == "http" else None
        flags = [*POLICY_FLAGS, "--allow-load", os.path.dirname(TYPES)]
        try:
            async with modern(transport, server, flags) as client:
                discovered = client.session.discover_result
                assert MODERN in discovered.supported_versions and "2025-11-25" in discovered.supported_versions
                assert client.server_info is not None and client.server_info.name == "wharf"
                # No sessions, so no loading: the management tools and list_changed are not offered.
                caps = client.server_capabilities
                assert caps.tools is not None and not caps.tools.list_changed, caps
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "mcp_types.add" in tools and NEW in tools and not any(t.startswith("wharf.") for t in tools)
                assert await ok(client, "mcp_types.add", {"a": 2, "b": 3}) == 5
                assert (await client.call_tool("mcp_types.types.divide", {"a": 1, "b": 0})).is_error
                await error(client, "mcp_types.types.total", {"items": [{"name": "a", "qty": 300, "tags": []}]},
                            "items[0].qty: 300 is above the maximum 255 for u8")
        finally:
            if server:
                assert server.alive(), server.tail()
                server.stop()

    run(body)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_handles_outlive_requests(transport):
    async def body():
        server = http_server() if transport == "http" else None
        try:
            async with modern(transport, server) as client:
                a = await ok(client, NEW, {"start": 5})
                assert HANDLE_RE.match(a), a
                # Every request is on its own (over HTTP: its own POST, no session id), yet the
                # handle finds its instance.
                assert await ok(client, INCREMENT, {"self": a, "by": 3}) == 8
                b = await ok(client, FORK, {"self": a})
                assert await ok(client, SUM, {"counters": [a, b]}) == 16
                # A second constructor call: an instance of its own; handles of two instances
                # cannot meet in one call.
                other = await ok(client, NEW, {"start": 1})
                await error(client, SUM, {"counters": [a, other]}, "two different instances")
                await error(client, MERGE, {"into": other, "other": b}, "two different instances")
                assert await ok(client, GET, {"self": other}) == 1
                # `own` consumes; a consumed or made-up handle is unknown.
                assert await ok(client, MERGE, {"into": a, "other": b}) == 16
                await error(client, GET, {"self": b}, "unknown handle")
                await error(client, GET, {"self": "counter-" + secrets.token_hex(16)}, "unknown handle")
                assert await ok(client, GET, {"self": a}) == 16
        finally:
            if server:
                assert server.alive(), server.tail()
                server.stop()

    run(body)


def test_handles_are_bound_to_their_client_and_capped_per_client():
    """Two clients at once (127.0.0.1 and 127.0.0.2): neither can use the other's handles, and
    each holds at most 16 instances (the cap counts instances, not handles)."""

    async def body():
        server = http_server()
        try:
            async with modern("http", server) as one, modern("http", server, source="127.0.0.2") as two:
                mine = await ok(one, NEW, {"start": 7})
                for name, args in [(GET, {"self": mine}), (INCREMENT, {"self": mine, "by": 1}),
                                   (SUM, {"counters": [mine]}), (FORK, {"self": mine})]:
                    await error(two, name, args, "unknown handle")
                theirs = await ok(two, NEW, {"start": 1})
                await error(one, MERGE, {"into": mine, "other": theirs}, "unknown handle")
                assert await ok(one, GET, {"self": mine}) == 7, "the other client's attempts changed nothing"

                held = [mine] + [await ok(one, NEW, {"start": i}) for i in range(CAP - 1)]
                await error(one, NEW, {"start": 99}, f"holds {CAP} instances")
                # Functions that mint nothing still work at the cap, and so does the other client.
                assert await ok(one, "mcp_types.add", {"a": 1, "b": 1}) == 2
                assert await ok(one, GET, {"self": held[3]}) == 2
                assert await ok(two, NEW, {"start": 2})
                # The cap counts instances, not handles: more handles in a held instance are fine.
                fork = await ok(one, FORK, {"self": held[5]})
                assert await ok(one, MERGE, {"into": fork, "other": held[5]}) == 8
                await error(one, GET, {"self": held[5]}, "unknown handle")
                await error(one, NEW, {"start": 99}, f"holds {CAP} instances")
            assert server.alive(), server.tail()
        finally:
            server.stop()

    run(body)


def test_idle_instances_expire():
    async def body():
        server = http_server(["--handle-idle-timeout", "5s"])
        try:
            async with modern("http", server) as client:
                started = time.monotonic()
                handles = [await ok(client, NEW, {"start": i}) for i in range(CAP)]
                await error(client, NEW, {"start": 0}, f"holds {CAP} instances")
                assert time.monotonic() - started < 4, "too slow to test a 5 s idle timeout"
                kept = handles[0]
                # One instance in use stays; the others expire and make room again.
                for _ in range(14):
                    await anyio.sleep(0.5)
                    await ok(client, GET, {"self": kept})
                await error(client, GET, {"self": handles[1]}, "unknown handle")
                assert await ok(client, GET, {"self": kept}) == 0
                fresh = [await ok(client, NEW, {"start": i}) for i in range(CAP - 1)]
                assert len(fresh) == CAP - 1
            assert server.alive(), server.tail()
        finally:
            server.stop()

    run(body)


def test_logs_only_on_request_and_no_requests_back():
    """2026-07-28: log messages only for a request whose `_meta` opts in (at or above its level);
    no server-to-client request during a call, so `sample` answers the guest with an error."""

    async def body():
        for level, expected in [(None, 0), ("info", 3), ("warning", 0)]:
            heard = []

            async def logged(params):
                heard.append(params)

            async def sampled(context, params):
                raise AssertionError("a 2026-07-28 server must not send sampling/createMessage")

            target = StdioServerParameters(
                command=wharf_bin(),
                args=["mcp", *POLICY_FLAGS, "--tool-names", "underscore", "=" + component("MCP_CONFORMANCE")],
                env=server_env())
            async with Client(target, log_level=level, logging_callback=logged, sampling_callback=sampled) as client:
                assert client.protocol_version == MODERN
                assert await ok(client, "test_tool_with_logging", {}) == "Tool with logging executed successfully"
                assert len(heard) == expected, (level, heard)
                result = await client.call_tool("test_sampling", {"prompt": "hi"})
                assert result.is_error and "2026-07-28" in text_of(result), text_of(result)

    run(body)


# ---------------------------------------------------------------------------------------------
# Raw HTTP: what a hostile client sends without an SDK.


def post(url: str, message: dict, *, version: str | None = MODERN, client: httpx2.Client | None = None,
         session: str | None = None, body: bytes | None = None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if version:
        headers["MCP-Protocol-Version"] = version
    if "method" in message:
        headers["Mcp-Method"] = message["method"]
    name = message.get("params", {}).get("name")
    if isinstance(name, str):
        headers["Mcp-Name"] = name
    if session:
        headers["Mcp-Session-Id"] = session
    data = body if body is not None else json.dumps(message).encode()
    return (client or httpx2).post(url, content=data, headers=headers, timeout=30)


def meta(version: str = MODERN) -> dict:
    return {"io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}


def result_of(response) -> dict:
    """The JSON-RPC message of a JSON or single-event SSE response."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
        text = datas[-1]
    return json.loads(text)


def call(url: str, tool: str, args: dict, **kw) -> dict:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": args, "_meta": meta()}}
    response = post(url, message, **kw)
    assert response.status_code == 200, (response.status_code, response.text)
    return result_of(response)["result"]


def test_hostile_stateless_clients():
    server = http_server(["--max-sessions", "2"])
    try:
        url = server.url
        with httpx2.Client() as conn:
            # A discover flood: cheap, stateless, leaves nothing behind.
            started = time.monotonic()
            discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta()}}
            for i in range(2000):
                response = post(url, discover, client=conn)
                assert response.status_code == 200, (i, response.status_code, response.text)
            assert MODERN in result_of(response)["result"]["supportedVersions"]
            assert time.monotonic() - started < 120
            # Guessing: random handles, and a real one with one digit changed, are all unknown.
            real = call(url, NEW, {"start": 3})["structuredContent"]["result"]
            for guess in ["counter-" + secrets.token_hex(16) for _ in range(200)] + [real[:-1] + ("0" if real[-1] != "0" else "1")]:
                result = call(url, GET, {"self": guess}, client=conn)
                assert result["isError"] and "unknown handle" in result["content"][0]["text"], result
            assert call(url, GET, {"self": real})["structuredContent"] == {"result": 3}
            # Not a handle's shape at all: refused by the schema's pattern before any lookup.
            assert call(url, GET, {"self": "../" + real})["isError"]
        # The session table full of sessions in use: stateless requests still go through, and
        # close none of them to make room (there is nothing to make room for).
        sessions = []
        for _ in range(2):
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                               "clientInfo": {"name": "raw", "version": "0"}}}
            response = post(url, init, version=None)
            assert response.status_code == 200, response.text
            sid = response.headers["mcp-session-id"]
            post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, version="2025-11-25", session=sid)
            ping = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, version="2025-11-25", session=sid)
            assert ping.status_code == 200, ping.text
            sessions.append(sid)
        for _ in range(20):
            assert call(url, "mcp_types.add", {"a": 1, "b": 2})["structuredContent"] == {"result": 3}
        third = post(url, init, version=None)
        assert third.status_code == 503, (third.status_code, third.text)
        for sid in sessions:
            still = post(url, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, version="2025-11-25", session=sid)
            assert still.status_code == 200, f"session {sid} was closed: {still.status_code} {still.text}"
        # Oversized bodies: refused before parsing, the server keeps serving.
        big = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {"s": "' + \
            b"a" * (5 * 1024 * 1024) + b'"}}}'
        response = post(url, {"method": "tools/call"}, body=big)
        assert response.status_code == 413, (response.status_code, response.text[:200])
        assert call(url, "mcp_types.add", {"a": 2, "b": 2})["structuredContent"] == {"result": 4}
        assert server.alive(), server.tail()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Reply framing: JSON for a reply that is just the response, SSE when anything comes first.


def sse_messages(response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]


def test_replies_are_json_unless_something_comes_first():
    """A POSTed request whose reply is only its response gets it as `application/json` (rmcp
    streamed every reply as SSE, which cost the Python SDK 0.6-1.1 ms a call); notifications
    before the response, a client that ranks SSE higher, or a call still running after a second
    in a session keep the stream."""
    server = HttpServer(["=" + component("MCP_CONFORMANCE")], [*POLICY_FLAGS, "--tool-names", "underscore"])
    url = server.url
    simple = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": "test_simple_text", "arguments": {}, "_meta": meta()}}
    try:
        # Stateless (2026-07-28): JSON with a length, not chunked.
        response = post(url, simple)
        assert response.headers["content-type"] == "application/json", response.headers
        assert int(response.headers["content-length"]) == len(response.content)
        assert "chunked" not in response.headers.get("transfer-encoding", "")
        assert json.loads(response.content)["result"]["content"][0]["text"]
        # With sessions: `initialize` and calls alike; the session id still comes.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
        response = post(url, init, version=None)
        assert response.headers["content-type"] == "application/json", response.headers
        sid = response.headers["mcp-session-id"]
        post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, version="2025-11-25", session=sid)
        legacy = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "test_simple_text", "arguments": {}}}
        response = post(url, legacy, version="2025-11-25", session=sid)
        assert response.headers["content-type"] == "application/json", response.headers
        assert json.loads(response.content)["id"] == 2
        # Log messages before the response: the stream, in order, the response last.
        logged = {**simple, "params": {**simple["params"], "name": "test_tool_with_logging",
                                       "_meta": {**meta(), "io.modelcontextprotocol/logLevel": "info"}}}
        response = post(url, logged)
        assert response.headers["content-type"] == "text/event-stream", response.headers
        messages = sse_messages(response)
        assert [m.get("method") for m in messages] == ["notifications/message"] * 3 + [None], messages
        assert "result" in messages[-1]
        # A client that ranks SSE above JSON gets SSE.
        prefers_sse = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json;q=0.5",
                       "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"}
        response = httpx2.post(url, content=json.dumps(simple).encode(), headers=prefers_sse, timeout=30)
        assert response.headers["content-type"] == "text/event-stream", response.headers
        assert "result" in sse_messages(response)[-1]
        # A call in a session that sends nothing and runs past a second (here until --timeout
        # 2s): its headers and priming event come while it runs, then the rest of the stream.
        # (A stateless request's headers wait for its first message in rmcp, as before.)
        slow = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "wait_for_cancel", "arguments": {}}}
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": sid}
        started = time.monotonic()
        with httpx2.stream("POST", url, content=json.dumps(slow).encode(), headers=headers, timeout=30) as response:
            headers_at = time.monotonic() - started
            assert response.headers["content-type"] == "text/event-stream", response.headers
            text = response.read().decode()
        ended_at = time.monotonic() - started
        assert ended_at - headers_at > 0.3, (headers_at, ended_at)
        assert "timed out" in text, text
        assert server.alive(), server.tail()
    finally:
        server.stop()
