#![no_main]
//! A WASI 0.3 HTTP service (`wasi:http/service@0.3.0`) that streams every request body back as
//! it arrives, whatever the path: one chunk (at most 64 KiB) in the guest at a time, so a body
//! far larger than the guest's memory passes through with back-pressure both ways. The
//! request's `content-type` comes back, and request trailers become response trailers. The
//! response carries `x-echo: p3-echo`; a GET (no body) gets an empty body.
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::{StreamResult, spawn_local};
use wasip3::{wit_future, wit_stream};

struct Echo;

wasip3::http::service::export!(Echo);

/// The largest chunk the guest asks for (and so holds) at once.
const CHUNK: usize = 64 * 1024;

impl wasip3::exports::http::handler::Guest for Echo {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let mut headers = vec![("x-echo".to_string(), b"p3-echo".to_vec())];
        headers.extend(request.get_headers().get("content-type").into_iter().map(|v| ("content-type".to_string(), v)));
        let headers = Fields::from_list(&headers).map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;

        let (done_tx, done_rx) = wit_future::new(|| Ok(()));
        let (mut input, input_trailers) = Request::consume_body(request, done_rx);
        let (mut output, output_rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(output_rx), trailers_rx);
        spawn_local(async move {
            loop {
                let (status, chunk) = input.read(Vec::with_capacity(CHUNK)).await;
                // A client that went away leaves the rest unwritten: stop reading too.
                if !chunk.is_empty() && !output.write_all(chunk).await.is_empty() {
                    break;
                }
                if matches!(status, StreamResult::Dropped | StreamResult::Cancelled) {
                    break;
                }
            }
            drop(output);
            let trailers = input_trailers.await;
            let _ = done_tx.write(Ok(())).await;
            let _ = trailers_tx.write(trailers).await;
        });
        Ok(response)
    }
}
