//! How a POSTed request's reply goes back over streamable HTTP: one `application/json` body
//! when the reply is just the response, `text/event-stream` only when something comes first.
//!
//! rmcp answers every POSTed request with an SSE stream (a priming event, then the response;
//! with sessions always, without them unless `json_response`). The spec lets the server choose
//! either, and SSE costs clients dearly for a reply of one message: the Python SDK spent 0.6-1.1 ms
//! more per call parsing the stream than reading the same response as JSON, the TypeScript SDK
//! 0.1-0.35 ms (BENCHMARKS.md, stop 14), and the server wrote a chunked body in two writes. So the
//! stream is read here until its first message:
//!
//! - a response or error (the call sent nothing before it): that message alone, as JSON with a
//!   `Content-Length`; the rest of the stream (nothing, per the spec) is dropped;
//! - a notification or request first (progress, log messages, sampling, elicitation), or nothing
//!   within [`FIRST_MESSAGE_WAIT`] (a long call: the client gets its headers, the priming event
//!   for resumption and keep-alives as before): the stream as rmcp made it, from its first byte.
//!   (For a stateless request rmcp itself holds the headers until the first message.)
//!
//! A client that ranks `text/event-stream` above `application/json` (`q` values) keeps SSE.
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// How long a reply waits for its first message before it is streamed as SSE. A call this
/// long gains nothing from JSON, and its client should see headers and keep-alives.
pub const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(1);

/// The largest prefix of a stream held while waiting: past it the reply is streamed.
const MAX_HELD: usize = 64 * 1024 * 1024;

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Whether the client (its `Accept` header) takes JSON at least as gladly as SSE.
pub fn prefers_json(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (None, None);
    for value in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        for range in value.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if essence.eq_ignore_ascii_case("application/json") {
                json = Some(json.map_or(q, |old: f32| old.max(q)));
            } else if essence.eq_ignore_ascii_case("text/event-stream") {
                sse = Some(sse.map_or(q, |old: f32| old.max(q)));
            }
        }
    }
    match (json, sse) {
        (Some(json), Some(sse)) => json > 0.0 && json >= sse,
        (Some(json), None) => json > 0.0,
        _ => false,
    }
}

/// `response` to a POSTed request, as JSON if its stream starts with the final response
/// within `wait` (module docs; the server waits [`FIRST_MESSAGE_WAIT`]); any other response
/// unchanged.
pub async fn prefer_json(response: Reply, wait: Duration) -> Reply {
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"));
    if response.status() != StatusCode::OK || !is_sse {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let deadline = tokio::time::Instant::now() + wait;
    let mut held = BytesMut::new();
    // Where the next event starts in `held`, and how far past it no event end was found (so
    // a large event arriving in many frames is searched once, not again per frame).
    let (mut scanned, mut searched) = (0, 0);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            // The stream ended before any message: pass on what there was.
            Ok(None) => return Response::from_parts(parts, Full::new(held.freeze()).boxed()),
            Ok(Some(Err(never))) => match never {},
            Err(_) => return streamed(parts, held, body),
        };
        let Ok(data) = frame.into_data() else { continue };
        held.extend_from_slice(&data);
        while let Some(end) = find_event_end(&held[searched.max(scanned)..]) {
            let event = scanned..searched.max(scanned) + end;
            scanned = event.end + 2;
            let Some(message) = event_data(&held[event]) else { continue };
            if !is_final(&message) {
                return streamed(parts, held, body);
            }
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            parts.headers.remove("x-accel-buffering");
            return Response::from_parts(parts, Full::new(message).boxed());
        }
        // A `\n\n` may straddle this frame and the next.
        searched = held.len().saturating_sub(1);
        if held.len() > MAX_HELD {
            return streamed(parts, held, body);
        }
    }
}

/// The stream from its first byte: what was held, then the rest.
fn streamed(parts: hyper::http::response::Parts, held: BytesMut, body: BoxBody<Bytes, Infallible>) -> Reply {
    Response::from_parts(parts, Prefixed::new(held.freeze(), body).boxed())
}

/// The length of the first SSE event in `bytes` (up to the blank line ending it), if complete.
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\n\n")
}

/// The data of one SSE event (its `data:` lines joined by newlines); `None` when it has none or
/// only empty data (a priming event, a comment, a keep-alive).
fn event_data(event: &[u8]) -> Option<Bytes> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data:") else { continue };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match &mut data {
            Some(data) => {
                data.push(b'\n');
                data.extend_from_slice(value);
            }
            None => data = Some(value.to_vec()),
        }
    }
    data.filter(|d| !d.iter().all(u8::is_ascii_whitespace)).map(Bytes::from)
}

/// Whether a JSON-RPC message is a response or an error (not a request or notification), the
/// last message of a request's stream.
fn is_final(message: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        method: Option<serde::de::IgnoredAny>,
        result: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Kind>(message)
        .is_ok_and(|kind| kind.method.is_none() && (kind.result.is_some() || kind.error.is_some()))
}

/// A body that yields `prefix` (what was read while deciding), then the rest of the stream.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: BoxBody<Bytes, Infallible>,
}

impl Prefixed {
    fn new(prefix: Bytes, rest: BoxBody<Bytes, Infallible>) -> Self {
        Prefixed { prefix: (!prefix.is_empty()).then_some(prefix), rest }
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower() + extra);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn sse(events: &[&'static str], then_wait: bool) -> Reply {
        let frames: Vec<_> = events.iter().map(|e| Ok(Frame::data(Bytes::from_static(e.as_bytes())))).collect();
        let stream =
            futures_util::stream::iter(frames).chain(futures_util::stream::pending().take(usize::from(then_wait)));
        let mut response = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response.headers_mut().insert("mcp-session-id", HeaderValue::from_static("s1"));
        response
    }

    async fn read(response: Reply) -> (String, String) {
        let kind = response.headers().get(header::CONTENT_TYPE).unwrap().to_str().unwrap().to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (kind, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn prefer_json_soon(response: Reply) -> Reply {
        prefer_json(response, Duration::from_millis(200)).await
    }

    const PRIMING: &str = "data: \nid: 0/0\nretry: 3000\n\n";
    const RESPONSE: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\nid: 1/0\n\n";
    const PROGRESS: &str = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";

    #[tokio::test]
    async fn a_lone_response_becomes_json() {
        let response = prefer_json_soon(sse(&[PRIMING, RESPONSE], true)).await;
        assert_eq!(response.headers()["mcp-session-id"], "s1", "other headers are kept");
        assert_eq!(read(response).await, ("application/json".into(), r#"{"jsonrpc":"2.0","id":2,"result":{}}"#.into()));
        // Split anywhere, and errors too.
        let error = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-1,\"message\":\"m\"}}\n\n";
        for events in [&["da", "ta: \n\nda", "ta: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n", "\n"][..], &[error]]
        {
            let (kind, _) = read(prefer_json_soon(sse(events, false)).await).await;
            assert_eq!(kind, "application/json");
        }
    }

    #[tokio::test]
    async fn notifications_first_keep_the_stream() {
        let (kind, body) = read(prefer_json_soon(sse(&[PRIMING, PROGRESS, RESPONSE], false)).await).await;
        assert_eq!((kind.as_str(), body), ("text/event-stream", format!("{PRIMING}{PROGRESS}{RESPONSE}")));
        // A server-to-client request (sampling) too: it has an id but a method.
        let sampling = "data: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"sampling/createMessage\"}\n\n";
        let (kind, _) = read(prefer_json_soon(sse(&[sampling, RESPONSE], false)).await).await;
        assert_eq!(kind, "text/event-stream");
    }

    #[tokio::test]
    async fn a_long_call_is_streamed_in_time() {
        // Only the priming event within the wait: the stream goes out, priming event first.
        let started = std::time::Instant::now();
        let response = prefer_json_soon(sse(&[PRIMING], true)).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, PRIMING.as_bytes());
    }

    #[tokio::test]
    async fn other_replies_pass_unchanged() {
        let mut accepted = sse(&[RESPONSE], false);
        *accepted.status_mut() = StatusCode::ACCEPTED;
        assert_eq!(read(prefer_json_soon(accepted).await).await.0, "text/event-stream");
        let (kind, body) = read(prefer_json_soon(sse(&[PRIMING], false)).await).await;
        assert_eq!((kind.as_str(), body.as_str()), ("text/event-stream", PRIMING));
    }

    #[test]
    fn accept_ranks_json_and_sse() {
        let prefers = |accept: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            prefers_json(&headers)
        };
        assert!(prefers("application/json, text/event-stream"));
        assert!(prefers("text/event-stream, application/json"), "order alone says nothing");
        assert!(prefers("text/event-stream;q=0.5, application/json"));
        assert!(!prefers("application/json;q=0.5, text/event-stream"));
        assert!(!prefers("application/json;q=0, text/event-stream"));
        assert!(!prefers("text/event-stream"));
    }
}
