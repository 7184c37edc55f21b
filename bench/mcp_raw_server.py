"""A minimal streamable-HTTP MCP endpoint, to tell an MCP client's own per-call cost from the
server's (bench/mcp.sh). Every request but `tools/call` (`initialize`, `server/discover`,
`tools/list`, notifications, `DELETE`) goes to a real MCP server (UPSTREAM, e.g. `wharf mcp
--http`), so the client's handshake is real; so does the first `tools/call` of each protocol
version, whose result is then replayed for every later call (in the request's id) at the cost
of one small asyncio write. `GET` gets 405 (no notification stream), which both SDKs accept.

    python bench/mcp_raw_server.py PORT UPSTREAM_URL json|sse

`json` answers a call as `application/json` with a Content-Length; `sse` as rmcp's session
streams do (`text/event-stream`, chunked: a priming event, the response, the last chunk).
"""
import asyncio
import http.client
import json
import sys
import urllib.parse

# The upstream's `tools/call` result per protocol version (the header), learnt from the first call.
RESULTS = {}


def upstream(url, method, headers, body):
    """Forwards one request to the real server; returns (status, headers, body), body whole."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    keep = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
    conn.request(method, parts.path, body=body, headers=keep)
    response = conn.getresponse()
    data = response.read()
    skip = ("transfer-encoding", "content-length", "connection", "date")
    out = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
    conn.close()
    return response.status, out, data


def reply(status, headers, body):
    head = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers] + [f"content-length: {len(body)}", "", ""]
    return "\r\n".join(head).encode() + body


async def serve(reader, writer, url, mode):
    while True:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            break
        lines = head.decode("latin-1").split("\r\n")
        method = lines[0].split(" ")[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        message = json.loads(body) if body else {}
        if method == "GET":
            writer.write(reply(405, [("allow", "POST, DELETE")], b""))
        elif method == "POST" and message.get("method") == "tools/call" and headers.get("mcp-protocol-version") in RESULTS:
            result = RESULTS[headers.get("mcp-protocol-version")]
            answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}, separators=(",", ":"))
            if mode == "json":
                writer.write(reply(200, [("content-type", "application/json")], answer.encode()))
            else:
                events = [b"data: \nid: 0/0\nretry: 3000\n\n", f"data: {answer}\nid: 1/0\n\n".encode()]
                chunks = b"".join(b"%X\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                             b"transfer-encoding: chunked\r\n\r\n" + chunks)
        else:
            status, out, data = upstream(url, method, headers, body)
            if message.get("method") == "tools/call":
                # The answer is JSON or one SSE data event (after an empty priming event).
                text = data.decode()
                if "text/event-stream" in {k.lower(): v for k, v in out}.get("content-type", ""):
                    text = [line[6:] for line in text.split("\n") if line.startswith("data: ")][-1]
                RESULTS[headers.get("mcp-protocol-version")] = json.loads(text)["result"]
            writer.write(reply(status, out, data))
        await writer.drain()
    writer.close()


async def main(port, url, mode):
    async def handle(reader, writer):
        try:
            await serve(reader, writer, url, mode)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
