"""A `wasi:http/proxy@0.2.12` component in Python, after componentize-py's `http` example, with
the blocking 0.2 stream calls instead of its poll loop.

- `GET /`: a greeting.
- `POST /echo`: copies the request body to the response, 4 KiB at a time, with the request's
  `content-type`.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()
        path = request.path_with_query()

        if isinstance(method, Method_Get) and path == "/":
            respond(response_out, 200, [("content-type", b"text/plain")], [b"Hello from Python on WASI 0.2!\n"])
        elif isinstance(method, Method_Post) and path == "/echo":
            content_type = [pair for pair in request.headers().entries() if pair[0] == "content-type"]
            response = OutgoingResponse(Fields.from_list(content_type))
            body = response.body()
            ResponseOutparam.set(response_out, Ok(response))
            incoming = request.consume()
            with incoming.stream() as source, body.write() as sink:
                while True:
                    try:
                        chunk = source.blocking_read(4096)
                    except Err as e:
                        if isinstance(e.value, StreamError_Closed):
                            break
                        raise
                    if chunk:
                        sink.blocking_write_and_flush(chunk)
            OutgoingBody.finish(body, None)
        else:
            respond(response_out, 404, [], [bytes(f"no route for {path}\n", "utf-8")])


def respond(response_out: ResponseOutparam, status: int, headers: list, chunks: list) -> None:
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as sink:
        for chunk in chunks:
            sink.blocking_write_and_flush(chunk)
    OutgoingBody.finish(body, None)
