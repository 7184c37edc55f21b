"""Malformed MCP traffic (issue 7's hostile suite), written by hand without the SDK.

stdio: garbage lines, JSON that is not JSON-RPC, tools/call with params that are not an object,
invalid UTF-8 and a 5 MB line of junk. The server answers with JSON-RPC errors or ignores them,
never exits, writes nothing but JSON-RPC on stdout, and serves a well-formed session afterwards.
HTTP: invalid JSON gets a 4xx, a foreign Host or Origin gets 403 (DNS-rebinding protection),
and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import threading
import time

import pytest

from mcp_util import (
    POLICY_FLAGS,
    START_TIMEOUT,
    HttpServer,
    component,
    http_session,
    log_file,
    run,
    server_env,
    tail,
    wharf_bin,
)

TYPES = component("MCP_TYPES")
HUGE = 5 * 1024 * 1024
INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "wharf-hostile-tests", "version": "0"},
}


class RawStdio:
    """`wharf mcp` on pipes: we write raw bytes, a thread collects every stdout line."""

    def __init__(self, components: list[str]):
        self.log = log_file("raw")
        self.args = [wharf_bin(), "mcp", *POLICY_FLAGS, *components]
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=server_env()
        )
        self.lines: list[bytes] = []
        self.messages: "queue.Queue[dict]" = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self.messages.put(message)

    def context(self) -> str:
        shown = b"".join(line[:300] + (b"...\n" if len(line) > 300 else b"") for line in self.lines[-20:])
        return f"stdout (last lines):\n{shown.decode(errors='replace')}\nstderr:\n{tail(self.log.name)}"

    def send(self, data: bytes, timeout: float = 60.0) -> None:
        """Writes `data` to the server's stdin; fails if the server stops reading."""
        error: list[BaseException] = []

        def write():
            try:
                self.process.stdin.write(data)
                self.process.stdin.flush()
            except BaseException as e:  # a broken pipe means the server is gone
                error.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout)
        assert not writer.is_alive(), f"the server stopped reading stdin ({len(data)} bytes pending)\n{self.context()}"
        assert not error, f"writing to the server failed: {error[0]!r}\n{self.context()}"

    def send_json(self, message: dict) -> None:
        self.send(json.dumps(message).encode() + b"\n")

    def request(self, id, method: str, params=None) -> None:
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_json(message)

    def response(self, id, timeout: float = 30.0) -> dict:
        """Waits for the response to request `id` (other messages are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        for message in self.seen:
            if message.get("id") == id and ("result" in message or "error" in message):
                return message
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no response to request {id!r} within {timeout}s\n{self.context()}"
            try:
                message = self.messages.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                assert self.alive(), f"the server exited with {self.process.returncode}\n{self.context()}"
                continue
            self.seen.append(message)
            if message.get("id") == id and ("result" in message or "error" in message):
                return message

    def initialize(self) -> None:
        self.request(1, "initialize", INITIALIZE)
        reply = self.response(1, timeout=START_TIMEOUT)
        assert "result" in reply, f"initialize failed: {reply}"
        self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, id, name: str, arguments: dict) -> dict:
        self.request(id, "tools/call", {"name": name, "arguments": arguments})
        reply = self.response(id)
        assert "result" in reply, f"tools/call {name} failed: {reply}\n{self.context()}"
        return reply["result"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def assert_only_jsonrpc(self) -> None:
        """Everything on stdout so far is a JSON-RPC 2.0 message, one per line."""
        time.sleep(0.2)  # let the reader catch up
        for line in self.lines:
            try:
                message = json.loads(line)
            except ValueError:
                raise AssertionError(f"stdout carried a line that is not JSON: {line[:200]!r}") from None
            assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", f"not JSON-RPC: {line[:200]!r}"
            assert "garbage" not in message, f"guest output reached the transport: {line[:200]!r}"

    def assert_not_success(self, ids) -> None:
        """Requests that must not have succeeded: any response to them is an error."""
        for message in self.seen:
            if message.get("id") in ids and "result" in message:
                assert message["result"].get("isError") is True, f"request {message['id']!r} succeeded: {message}"

    def close(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def raw():
    server = RawStdio([TYPES])
    yield server
    server.close()


JUNK_LINES = [
    b"this is not json\n",
    b"{\n",
    b"[1, 2, 3]\n",
    b"[]\n",
    b'{"hello": "world"}\n',
    b'"just a string"\n',
    b"null\n",
    b'{"jsonrpc": "2.0"}\n',
    b'{"jsonrpc": "1.0", "id": "v1", "method": "tools/list"}\n',
    b'{"jsonrpc": "2.0", "id": "x1", "method": "tools/call", "params": [1, 2]}\n',
    b'{"jsonrpc": "2.0", "id": "x2", "method": "tools/call", "params": "mcp_types.add"}\n',
    b'{"jsonrpc": "2.0", "id": "x3", "method": "tools/call", "params": 42}\n',
    b'{"jsonrpc": "2.0", "id": {"nested": true}, "method": "tools/list"}\n',
    b"\xff\xfe\xfd not UTF-8 \xc3\x28\n",
    b"\n",
    b"   \n",
]
FAILED_IDS = {"x1", "x2", "x3", "x4", "x5", "x6", "x7"}


def send_junk(raw: RawStdio) -> None:
    for line in JUNK_LINES:
        raw.send(line)
    raw.send(b"x" * HUGE + b"\n")
    raw.send(b'{"jsonrpc": "2.0", "id": "x4", "method": "tools/call", "params": {"name": "' + b"y" * HUGE + b'"}}\n')
    assert raw.alive(), f"the server exited with {raw.process.returncode} on malformed input\n{raw.context()}"


def test_not_json_gets_parse_error(raw):
    """JSON-RPC 2.0: a message that is not JSON gets -32700 with `id: null` (the client is not
    left waiting), then the session goes on."""
    raw.initialize()
    raw.send(b"{nope\n")
    reply = raw.response(None, timeout=10)
    assert reply["error"]["code"] == -32700 and reply["id"] is None, reply
    raw.request("n1", "tools/call", {"arguments": {"a": 1, "b": 2}})
    reply = raw.response("n1")
    assert reply.get("error", {}).get("code") == -32602, f"tools/call without name: {reply}"
    assert raw.call(2, "mcp_types.add", {"a": 2, "b": 3})["structuredContent"] == {"result": 5}
    raw.assert_only_jsonrpc()


def test_malformed_lines_before_initialize(raw):
    send_junk(raw)
    raw.initialize()
    assert raw.call(2, "mcp_types.add", {"a": 2, "b": 3})["structuredContent"] == {"result": 5}
    raw.assert_not_success(FAILED_IDS)
    raw.assert_only_jsonrpc()
    assert raw.alive(), raw.context()


def test_malformed_lines_in_a_session(raw):
    raw.initialize()
    assert raw.call(2, "mcp_types.add", {"a": 1, "b": 1})["structuredContent"] == {"result": 2}
    send_junk(raw)
    raw.request("x5", "no/such-method", {})
    reply = raw.response("x5")
    assert "error" in reply, f"an unknown method must get a JSON-RPC error (-32601), got {reply}"
    raw.request("x6", "tools/call", {"name": "mcp_types.add", "arguments": [1, 2]})
    raw.request("x7", "tools/call", {"arguments": {"a": 1, "b": 2}})
    assert raw.call(3, "mcp_types.add", {"a": 2, "b": 3})["structuredContent"] == {"result": 5}
    # Guest output (JSON-RPC-looking lines) must not reach stdout, even interleaved with junk.
    assert raw.call(4, "mcp_types.types.chatty", {"lines": 50})["structuredContent"] == {"result": 50}
    raw.send(b"more garbage\n")
    assert raw.call(5, "mcp_types.add", {"a": 3, "b": 4})["structuredContent"] == {"result": 7}
    raw.assert_not_success(FAILED_IDS)
    raw.assert_only_jsonrpc()
    assert raw.alive(), raw.context()


def test_stdin_closed_ends_the_server(raw):
    raw.initialize()
    raw.process.stdin.close()
    try:
        raw.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"wharf mcp kept running after stdin closed\n{raw.context()}") from None


# --------------------------------------------------------------------------------------------
# HTTP


@pytest.fixture(scope="module")
def http_server():
    server = HttpServer([TYPES], POLICY_FLAGS)
    yield server
    server.stop()


def post(server: HttpServer, body: bytes, headers: dict[str, str] | None = None) -> tuple[int | None, bytes]:
    """POST /mcp with the headers a streamable HTTP client sends, plus `headers`. The status is
    None when the server closed the connection before answering (allowed for huge bodies)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    all_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Host": f"127.0.0.1:{server.port}",
    }
    all_headers.update(headers or {})
    try:
        try:
            connection.request("POST", "/mcp", body=body, headers=all_headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (e.g. 413) before reading the whole body
        try:
            response = connection.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected) as e:
            return None, repr(e).encode()
        return response.status, response.read()
    finally:
        connection.close()


def initialize_body() -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}).encode()


def test_http_rejects_malformed_and_foreign_requests(http_server):
    server = http_server
    for body in (b"{not json", b"", b"\xff\xfe", b"x" * HUGE):
        status, text = post(server, body)
        closed = status is None and len(body) == HUGE  # refusing a 5 MB body by closing is fine
        assert closed or 400 <= (status or 0) < 500, f"POST {body[:20]!r}: {status} {text[:200]!r}\n{server.tail()}"
    # Not JSON: 400 with a JSON-RPC parse error; JSON but no message: 400 with -32600 and its id.
    for body, code, id in ((b"{not json", -32700, None), (b'{"jsonrpc": "2.0", "id": 7}', -32600, 7)):
        status, text = post(server, body)
        assert status == 400, f"POST {body!r}: {status} {text[:200]!r}"
        reply = json.loads(text)
        assert reply["error"]["code"] == code and reply["id"] == id, f"POST {body!r}: {reply}"
    for headers in (
        {"Host": "evil.example"},
        {"Host": f"evil.example:{server.port}"},
        {"Origin": "http://evil.example"},
        {"Origin": f"http://evil.example:{server.port}"},
    ):
        status, text = post(server, initialize_body(), headers)
        assert status == 403, f"POST initialize with {headers}: status {status} {text[:200]!r}\n{server.tail()}"
    # The same request from the right place is served.
    status, text = post(server, initialize_body())
    assert status == 200 and b'"result"' in text, f"initialize: {status} {text[:300]!r}\n{server.tail()}"
    status, text = post(server, initialize_body(), {"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200, f"initialize with a same-origin Origin: {status} {text[:300]!r}\n{server.tail()}"
    assert server.alive(), server.tail()

    async def body():
        async with http_session(server) as s:
            assert await s.ok("mcp_types.add", {"a": 2, "b": 40}) == 42

    run(body)
    assert server.alive(), server.tail()
