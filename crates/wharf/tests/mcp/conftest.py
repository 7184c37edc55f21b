"""pytest fixtures: `connect` opens an MCP session over stdio (a fresh `wharf mcp` process) or
streamable HTTP (a new session against one `wharf mcp --http` server per set of components)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mcp_util import POLICY_FLAGS, HttpServer, http_session, stdio_session  # noqa: E402


class HttpServers:
    """One `wharf mcp --http` server per tuple of components, shared by the tests of a run."""

    def __init__(self):
        self.servers: dict[tuple[str, ...], HttpServer] = {}

    def get(self, components: tuple[str, ...]) -> HttpServer:
        server = self.servers.get(components)
        if server is not None and not server.alive():
            raise AssertionError(f"the HTTP server for {components} died earlier:\n{server.tail()}")
        if server is None:
            server = self.servers[components] = HttpServer(list(components), POLICY_FLAGS)
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def http_servers():
    servers = HttpServers()
    yield servers
    servers.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def connect(transport, http_servers):
    """`connect(*components)`: an async context manager yielding an initialized `Session`.
    After the test, an HTTP server that was used must still be running."""
    used: list[HttpServer] = []

    def connect(*components: str):
        if transport == "stdio":
            return stdio_session(list(components), POLICY_FLAGS)
        server = http_servers.get(tuple(components))
        used.append(server)
        return http_session(server)

    yield connect
    for server in used:
        assert server.alive(), f"the HTTP server exited with {server.process.returncode}:\n{server.tail()}"
