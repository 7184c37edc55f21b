//! JSON-RPC framing errors that rmcp leaves unanswered: a line of stdin that is not JSON gets
//! `-32700` with `id: null` (rmcp drops it silently), and an HTTP body that is not JSON, or not
//! a JSON-RPC message, gets `400` with a JSON-RPC error (rmcp answers `415` in plain text).
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{Request, Response, StatusCode};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// The longest stdin line read, as rmcp's own limit.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The largest HTTP body read, as rmcp's own limit for a POST.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// JSON-RPC's "Parse error".
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's "Invalid Request".
const INVALID_REQUEST: i64 = -32600;

fn error(id: Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Why `bytes` cannot be handed to rmcp, as the JSON-RPC error to answer; `None` when they are
/// a JSON-RPC message rmcp will read.
pub fn reject(bytes: &[u8]) -> Option<Value> {
    // The common case first, in one parse, as rmcp will read it.
    if serde_json::from_slice::<ClientJsonRpcMessage>(bytes).is_ok() {
        return None;
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => return Some(error(Value::Null, PARSE_ERROR, format!("parse error: not JSON: {e}"))),
    };
    // Well-formed JSON but not a message: answer the request's id if it has a usable one.
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    Some(error(id, INVALID_REQUEST, "invalid request: not a JSON-RPC 2.0 request, notification or response".into()))
}

/// Copies newline-delimited messages from `input` to `to_rmcp`, answering on `output` each line
/// that is not JSON (`-32700`) or longer than [`MAX_MESSAGE`]; `output` is shared with the
/// task that copies rmcp's replies, which writes whole lines too. Ends at end of input.
pub async fn filter_lines<R, W>(input: R, mut to_rmcp: W, output: &Mutex<Box<dyn AsyncWrite + Send + Unpin>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut oversized = false;
        // Read one line, keeping at most MAX_MESSAGE bytes of it.
        loop {
            let chunk = match input.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(chunk) => chunk,
            };
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (chunk.len(), false),
            };
            if line.len() + take > MAX_MESSAGE + 1 {
                oversized = true;
            } else {
                line.extend_from_slice(&chunk[..take]);
            }
            input.consume(take);
            if done {
                break;
            }
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let reply = if oversized {
            Some(error(Value::Null, PARSE_ERROR, format!("parse error: a message is longer than {MAX_MESSAGE} bytes")))
        } else if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            // Only what is not JSON is answered here; rmcp answers JSON that is not a message.
            serde_json::from_slice::<serde::de::IgnoredAny>(text)
                .err()
                .map(|e| error(Value::Null, PARSE_ERROR, format!("parse error: not JSON: {e}")))
        };
        match reply {
            Some(reply) => {
                tracing::debug!("answering a malformed message on stdin: {reply}");
                if write_line(output, &reply.to_string()).await.is_err() {
                    return;
                }
            }
            None => {
                if to_rmcp.write_all(text).await.is_err() || to_rmcp.write_all(b"\n").await.is_err() {
                    return;
                }
                let _ = to_rmcp.flush().await;
            }
        }
    }
}

/// Copies rmcp's replies from `from_rmcp` to `output`, one whole line at a time.
pub async fn copy_lines<R: AsyncRead + Unpin>(from_rmcp: R, output: &Mutex<Box<dyn AsyncWrite + Send + Unpin>>) {
    let mut lines = BufReader::new(from_rmcp);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if write_line(output, line.trim_end_matches('\n')).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_line(output: &Mutex<Box<dyn AsyncWrite + Send + Unpin>>, line: &str) -> std::io::Result<()> {
    let mut output = output.lock().await;
    output.write_all(line.as_bytes()).await?;
    output.write_all(b"\n").await?;
    output.flush().await
}

/// A POST body that is a JSON-RPC message.
pub struct Checked {
    /// The request, its body read.
    pub request: Request<Full<Bytes>>,
    /// Whether it is an `initialize` request (the one that opens a session).
    pub initialize: bool,
}

/// Reads a POST body whose media type is JSON and answers `400` with a JSON-RPC error when it is
/// not a JSON-RPC message (`413` past [`MAX_BODY`]); otherwise gives the request back with the
/// body read.
pub async fn check_post(
    request: Request<hyper::body::Incoming>,
) -> Result<Checked, Response<BoxBody<Bytes, Infallible>>> {
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let too_large = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            let (status, text) = match too_large {
                true => (StatusCode::PAYLOAD_TOO_LARGE, format!("request body exceeds {MAX_BODY} bytes")),
                false => (StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")),
            };
            return Err(json_response(status, &error(Value::Null, PARSE_ERROR, text)));
        }
    };
    if let Some(reply) = reject(&bytes) {
        return Err(json_response(StatusCode::BAD_REQUEST, &reply));
    }
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    let initialize = serde_json::from_slice::<Method>(&bytes).is_ok_and(|m| m.method.as_deref() == Some("initialize"));
    Ok(Checked { request: Request::from_parts(parts, Full::new(bytes)), initialize })
}

fn json_response(status: StatusCode, body: &Value) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_message() {
        assert_eq!(reject(b"{nope").unwrap()["error"]["code"], -32700);
        assert_eq!(reject(b"{nope").unwrap()["id"], Value::Null);
        let not_a_message = reject(br#"{"jsonrpc": "2.0", "id": 7}"#).unwrap();
        assert_eq!((not_a_message["id"].clone(), not_a_message["error"]["code"].clone()), (json!(7), json!(-32600)));
        assert!(reject(br#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#).is_none());
    }
}
