#![no_main]
//! A WASI 0.3 HTTP service that fetches a URL with the outbound `wasi:http/client@0.3.0` and
//! streams the upstream response back: `GET /?URL` answers with the upstream status, its
//! `content-type`, an `x-fetched: URL` header and its body, passed through chunk by chunk.
//! When the host refuses or the request fails: 502 and `fetch failed: ERROR-CODE`. Without a
//! URL: 400.
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use wasip3::wit_bindgen::{StreamResult, spawn_local};
use wasip3::{wit_future, wit_stream};

struct Fetch;

wasip3::http::service::export!(Fetch);

impl wasip3::exports::http::handler::Guest for Fetch {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_with_query = request.get_path_with_query().unwrap_or_default();
        let url = path_with_query.split_once('?').map(|(_, url)| url).unwrap_or_default();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(text(400, format!("usage: GET /?http://HOST[:PORT]/PATH, got {url:?}\n")));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (_, no_trailers) = wit_future::new(|| Ok(None));
        let (outgoing, _sent) = Request::new(Fields::new(), None, no_trailers, None);
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        let set = outgoing.set_method(&Method::Get).is_ok()
            && outgoing.set_scheme(Some(&scheme)).is_ok()
            && outgoing.set_authority(Some(authority)).is_ok()
            && outgoing.set_path_with_query(Some(path)).is_ok();
        if !set {
            return Ok(text(400, format!("not a URL wasi:http accepts: {url}\n")));
        }
        let upstream = match client::send(outgoing).await {
            Ok(upstream) => upstream,
            Err(e) => return Ok(text(502, format!("fetch failed: {e:?}\n"))),
        };
        let status = upstream.get_status_code();
        let mut headers = vec![("x-fetched".to_string(), url.as_bytes().to_vec())];
        headers.extend(upstream.get_headers().get("content-type").into_iter().map(|v| ("content-type".to_string(), v)));
        let headers = Fields::from_list(&headers).map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;

        let (done_tx, done_rx) = wit_future::new(|| Ok(()));
        let (mut body, upstream_trailers) = Response::consume_body(upstream, done_rx);
        let (mut output, output_rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(output_rx), trailers_rx);
        response.set_status_code(status).map_err(|()| ErrorCode::InternalError(Some("bad status".into())))?;
        spawn_local(async move {
            loop {
                let (status, chunk) = body.read(Vec::with_capacity(64 * 1024)).await;
                if !chunk.is_empty() && !output.write_all(chunk).await.is_empty() {
                    break;
                }
                if matches!(status, StreamResult::Dropped | StreamResult::Cancelled) {
                    break;
                }
            }
            drop(output);
            // An upstream body that ended in an error ends ours in one too: never a short body
            // that looks complete.
            let trailers = upstream_trailers.await;
            let _ = done_tx.write(Ok(())).await;
            let _ = trailers_tx.write(trailers).await;
        });
        Ok(response)
    }
}

fn text(status: u16, body: String) -> Response {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap();
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
    response.set_status_code(status).unwrap();
    spawn_local(async move {
        tx.write_all(body.into_bytes()).await;
        drop(tx);
        let _ = trailers_tx.write(Ok(None)).await;
    });
    response
}
