"""Helpers for driving `wharf mcp` with the official Python MCP SDK (stdio and streamable HTTP).

Inputs (environment): WHARF_BIN (the wharf binary), MCP_TYPES, MCP_COUNTER, MCP_DOCS (guest
components), optionally WHARF_CACHE_DIR (compile cache; a temporary one otherwise).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import jsonschema
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError as McpError

SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# The policy every test server runs under (the spec's example flags).
POLICY_FLAGS = ["--timeout", "2s", "--max-memory", "64MiB"]
# Starting a server includes compiling its components (once per cache), hence generous.
START_TIMEOUT = 120.0
CALL_TIMEOUT = 30.0
HANDLE_RE = re.compile(r"^counter-[0-9a-f]{32}$")


def env_path(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (see crates/wharf/tests/mcp/README.md)")
    if not Path(value).exists():
        raise RuntimeError(f"{name}={value} does not exist")
    return value


def wharf_bin() -> str:
    return env_path("WHARF_BIN")


def component(name: str) -> str:
    """Path of a guest component: `component("MCP_TYPES")`."""
    return env_path(name)


_cache_dir: str | None = None


def server_env() -> dict[str, str]:
    """The environment wharf runs in: ours, a shared compile cache, info-level logs on stderr."""
    global _cache_dir
    env = dict(os.environ)
    if not env.get("WHARF_CACHE_DIR"):
        if _cache_dir is None:
            _cache_dir = tempfile.mkdtemp(prefix="wharf-mcp-cache-")
            atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
        env["WHARF_CACHE_DIR"] = _cache_dir
    env.setdefault("WHARF_LOG", "info")
    env.pop("RUST_BACKTRACE", None)
    return env


def log_file(tag: str):
    """A file for a server's stderr, so a failure can show its end (see `tail`); the caller
    deletes it when the server is done."""
    return tempfile.NamedTemporaryFile(mode="w+", prefix=f"wharf-mcp-{tag}-", suffix=".log", delete=False)


def tail(path: str, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# Servers and sessions


class HttpServer:
    """`wharf mcp --http 127.0.0.1:PORT FLAGS COMPONENTS`, killed by `stop()`."""

    def __init__(self, components: list[str], flags: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = log_file("http")
        args = [wharf_bin(), "mcp", "--http", f"127.0.0.1:{self.port}", *(flags or []), *components]
        self.args = args
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=server_env()
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = f"`{' '.join(self.args)}` exited with {self.process.returncode} before listening:\n{self.tail()}"
                self.stop()
                raise AssertionError(message)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        message = f"`{' '.join(self.args)}` did not listen within {START_TIMEOUT}s:\n{self.tail()}"
        self.stop()
        raise AssertionError(message)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        self.log.flush()
        return tail(self.log.name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if not self.log.closed:
            self.log.close()
            os.unlink(self.log.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Session:
    """A `ClientSession` plus what a failure message needs (the server's log)."""

    def __init__(self, session: ClientSession, transport: str, log_path: str, stray: list[Exception]):
        self.session = session
        self.transport = transport
        self.log_path = log_path
        # What the SDK could not parse as JSON-RPC (e.g. guest output leaking into stdout).
        self.stray = stray
        self._tools = None

    def assert_clean(self) -> None:
        assert not self.stray, f"the {self.transport} transport carried non-JSON-RPC data: {self.stray[:3]!r}"

    def log(self) -> str:
        return tail(self.log_path)

    async def list_tools(self):
        result = await self.session.list_tools()
        tools = list(result.tools)
        cursor = result.next_cursor
        while cursor:
            page = await self.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools += page.tools
            cursor = page.next_cursor
        self._tools = {tool.name: tool for tool in tools}
        return self._tools

    async def tools(self):
        if self._tools is None:
            await self.list_tools()
        return self._tools

    async def call(self, name: str, arguments: dict[str, Any], timeout: float = CALL_TIMEOUT):
        """tools/call, with the result checked against the spec's shape (see `check_result`)."""
        try:
            with anyio.fail_after(timeout):
                result = await self.session.call_tool(name, arguments)
        except (McpError, TimeoutError) as e:
            raise AssertionError(f"tools/call {name}({arguments}) failed: {e!r}\nserver log:\n{self.log()}") from e
        tool = (await self.tools()).get(name)
        check_result(name, tool, result)
        self.assert_clean()
        return result

    async def ok(self, name: str, arguments: dict[str, Any], timeout: float = CALL_TIMEOUT) -> Any:
        """Calls a tool that must succeed; returns `structuredContent["result"]` (None if no result)."""
        result = await self.call(name, arguments, timeout)
        assert not result.is_error, f"{name}({arguments}) failed: {text_of(result)}\nserver log:\n{self.log()}"
        return result.structured_content.get("result")

    async def error(self, name: str, arguments: dict[str, Any], *needles: str, timeout: float = CALL_TIMEOUT) -> str:
        """Calls a tool that must fail with isError; returns its text, which contains every needle."""
        result = await self.call(name, arguments, timeout)
        text = text_of(result)
        assert result.is_error, f"{name}({arguments}) should have failed, got {text}"
        for needle in needles:
            assert needle in text, f"{name}({arguments}): expected {needle!r} in the error text {text!r}"
        return text


@asynccontextmanager
async def stdio_session(components: list[str], flags: list[str] | None = None) -> AsyncIterator[Session]:
    """A fresh `wharf mcp FLAGS COMPONENTS` process on stdio, initialized."""
    params = StdioServerParameters(
        command=wharf_bin(), args=["mcp", *(flags or []), *components], env=server_env()
    )
    stray, handler = stray_recorder()
    with log_file("stdio") as errlog:
        try:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, message_handler=handler) as session:
                    await initialize(session, errlog.name)
                    yield Session(session, "stdio", errlog.name, stray)
        finally:
            os.unlink(errlog.name)


@asynccontextmanager
async def http_session(server: HttpServer) -> AsyncIterator[Session]:
    """A new MCP session (its own `Mcp-Session-Id`) against a running HTTP server."""
    stray, handler = stray_recorder()
    async with streamable_http_client(server.url) as (read, write):
        async with ClientSession(read, write, message_handler=handler) as session:
            await initialize(session, server.log.name)
            yield Session(session, "http", server.log.name, stray)


async def initialize(session: ClientSession, log_path: str) -> None:
    try:
        with anyio.fail_after(START_TIMEOUT):
            await session.initialize()
    except (McpError, TimeoutError) as e:
        raise AssertionError(f"MCP initialize failed: {e!r}\nserver log:\n{tail(log_path)}") from e


def stray_recorder():
    """A ClientSession message handler that keeps the transport's parse failures."""
    stray: list[Exception] = []

    async def handler(message) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    return stray, handler


@asynccontextmanager
async def open_session(transport: str, components: list[str], http_server: HttpServer | None = None):
    """A session over `transport` ("stdio" or "http"); HTTP sessions use `http_server`."""
    if transport == "stdio":
        async with stdio_session(components, POLICY_FLAGS) as session:
            yield session
    else:
        assert http_server is not None, "an HTTP session needs a server"
        async with http_session(http_server) as session:
            yield session


def run(test, timeout: float = 300.0) -> None:
    """Runs an async test body under a deadline; a lone exception escapes its exception groups."""

    async def main():
        with anyio.fail_after(timeout):
            await test()

    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        leaves = leaf_exceptions(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def leaf_exceptions(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_exceptions(inner)]
    return [error]


# ---------------------------------------------------------------------------------------------
# Results and schemas


def text_of(result) -> str:
    texts = [block.text for block in result.content if block.type == "text"]
    return "\n".join(texts)


def check_result(name: str, tool, result) -> None:
    """The spec's result shape: one text block holding exactly the JSON of structuredContent,
    `{"result": V}` valid against outputSchema (checked here with jsonschema, not by the SDK),
    or `{}` for a function without a result. Errors other than `err` results carry text only."""
    blocks = result.content
    assert len(blocks) == 1 and blocks[0].type == "text", f"{name}: expected one text block, got {blocks!r}"
    structured = result.structured_content
    if result.is_error and structured is None:
        return  # invalid arguments, trap, timeout, ...: a message, no value
    assert structured is not None, f"{name}: no structuredContent in {result!r}"
    text = blocks[0].text
    try:
        parsed = json.loads(text)
    except ValueError:
        raise AssertionError(f"{name}: the text block is not JSON: {text!r}") from None
    assert same_json(parsed, structured), f"{name}: text {text!r} differs from structuredContent {structured!r}"
    if tool is None:
        return
    if tool.output_schema is None:
        assert structured == {}, f"{name} has no outputSchema but returned structuredContent {structured!r}"
    else:
        errors = sorted(
            jsonschema.Draft202012Validator(tool.output_schema).iter_errors(structured), key=lambda e: list(e.path)
        )
        assert not errors, f"{name}: structuredContent {structured!r} violates outputSchema: {errors[0].message}"


def same_json(a: Any, b: Any) -> bool:
    """JSON equality where 2 == 2.0 but True != 1 and NaN never appears (floats travel as strings)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def deref(schema: dict, root: dict) -> dict:
    """Follows a local `$ref` (`#/$defs/...`), in case the server factors named types out."""
    while isinstance(schema, dict) and "$ref" in schema and len(schema) == 1:
        ref = schema["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        target = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


class Schema:
    """A schema with its document, so nested `$ref`s resolve: `Schema(tool.input_schema)["value"]`."""

    def __init__(self, schema: dict, root: dict | None = None):
        self.root = root if root is not None else schema
        self.schema = deref(schema, self.root)

    def prop(self, name: str) -> "Schema":
        props = self.schema.get("properties")
        assert props is not None and name in props, f"no property {name!r} in {self.schema!r}"
        return Schema(props[name], self.root)

    def items(self) -> "Schema":
        return Schema(self.schema["items"], self.root)

    def get(self, key: str, default=None):
        return self.schema.get(key, default)

    def validator(self):
        """A 2020-12 validator for this sub-schema, with the whole document's `$defs` in reach."""
        schema = dict(self.schema)
        if "$defs" in self.root and "$defs" not in schema:
            schema["$defs"] = self.root["$defs"]
        return jsonschema.Draft202012Validator(schema)

    def accepts(self, value: Any) -> bool:
        return self.validator().is_valid(value)


def assert_object_schema(schema: Schema, fields: list[str], what: str) -> None:
    """A record or an argument object: every field required, nothing else allowed."""
    s = schema.schema
    assert s.get("type") == "object", f"{what}: type is {s.get('type')!r}, not object: {s!r}"
    assert set(s.get("properties", {})) == set(fields), f"{what}: properties {list(s.get('properties', {}))} != {fields}"
    assert sorted(s.get("required", [])) == sorted(fields), f"{what}: required {s.get('required')} != {fields}"
    assert s.get("additionalProperties") is False, f"{what}: additionalProperties is not false: {s!r}"


def assert_integer_schema(schema: Schema, minimum: int, maximum: int, what: str) -> None:
    s = schema.schema
    assert s.get("type") == "integer", f"{what}: {s!r}"
    assert s.get("minimum") == minimum and type(s.get("minimum")) is int, f"{what}: minimum in {s!r} != {minimum}"
    assert s.get("maximum") == maximum and type(s.get("maximum")) is int, f"{what}: maximum in {s!r} != {maximum}"


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
