"""A `wasi:http/service@0.3.0` component in Python, after componentize-py's `http-p3` example.

- `GET /`: a greeting.
- `POST /echo`: streams the request body back without buffering it (the body stream itself is
  handed to the response), with the request's `content-type`.
- `GET /hash-all`: fetches every `url` request header concurrently through the outbound
  `wasi:http/client`, hashing each body as it arrives, and streams `URL: SHA-256` lines back.
"""

import asyncio
import hashlib
from typing import Optional
from urllib import parse

import componentize_py_async_support
import wit_world
from componentize_py_async_support.futures import FutureReader
from componentize_py_async_support.streams import ByteStreamWriter
from componentize_py_types import Ok, Result
from wit_world import exports
from wit_world.imports import client
from wit_world.imports.wasi_http_types import (
    ErrorCode,
    Fields,
    Method_Get,
    Method_Post,
    Request,
    Response,
    Scheme,
    Scheme_Http,
    Scheme_Https,
    Scheme_Other,
)


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        method = request.get_method()
        path = request.get_path_with_query()
        headers = request.get_headers().copy_all()

        if isinstance(method, Method_Get) and path == "/":
            return text(200, b"Hello from Python on WASI 0.3!\n")

        if isinstance(method, Method_Post) and path == "/echo":
            body, trailers = Request.consume_body(request, unit_future())
            content_type = [pair for pair in headers if pair[0] == "content-type"]
            return Response.new(Fields.from_list(content_type), body, trailers)[0]

        if isinstance(method, Method_Get) and path == "/hash-all":
            urls = [str(value, "utf-8") for name, value in headers if name == "url"]
            tx, rx = wit_world.byte_stream()
            componentize_py_async_support.spawn(hash_all(urls, tx))
            return Response.new(Fields.from_list([("content-type", b"text/plain")]), rx, trailers_future())[0]

        return text(404, bytes(f"no route for {path}\n", "utf-8"))


def text(status: int, body: bytes) -> Response:
    tx, rx = wit_world.byte_stream()
    componentize_py_async_support.spawn(write_all(tx, body))
    response = Response.new(Fields.from_list([("content-type", b"text/plain")]), rx, trailers_future())[0]
    response.set_status_code(status)
    return response


async def write_all(tx: ByteStreamWriter, body: bytes) -> None:
    with tx:
        await tx.write_all(body)


async def hash_all(urls: list[str], tx: ByteStreamWriter) -> None:
    with tx:
        for result in asyncio.as_completed(map(sha256, urls)):
            url, digest = await result
            await tx.write_all(bytes(f"{url}: {digest}\n", "utf-8"))


async def sha256(url: str) -> tuple[str, str]:
    parsed = parse.urlparse(url)
    match parsed.scheme:
        case "http":
            scheme: Scheme = Scheme_Http()
        case "https":
            scheme = Scheme_Https()
        case _:
            scheme = Scheme_Other(parsed.scheme)

    request = Request.new(Fields(), None, trailers_future(), None)[0]
    request.set_scheme(scheme)
    request.set_authority(parsed.netloc)
    request.set_path_with_query(parsed.path or "/")

    try:
        response = await client.send(request)
    except Exception as e:
        return url, f"failed: {e}"
    status = response.get_status_code()
    if status < 200 or status > 299:
        return url, f"unexpected status: {status}"

    rx = Response.consume_body(response, unit_future())[0]
    hasher = hashlib.sha256()
    with rx:
        while not rx.writer_dropped:
            hasher.update(await rx.read(16 * 1024))
    return url, hasher.hexdigest()


def trailers_future() -> FutureReader[Result[Optional[Fields], ErrorCode]]:
    return wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))[1]


def unit_future() -> FutureReader[Result[None, ErrorCode]]:
    return wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))[1]
