#![no_main]
//! A WASI 0.3 HTTP service (`wasi:http/service@0.3.0`: an async `handle` returning a response
//! whose body is a `stream<u8>` and whose trailers are a `future`), built with `wasip3`. The
//! path picks the behaviour:
//!
//! - `/`: a greeting. `/count`: a counter kept in the instance (shows instance reuse).
//! - `/echo`: streams the request body back as it arrives, request trailers become response
//!   trailers. `/trailers`: a short body with a trailer.
//! - `/fetch?URL`: fetches URL (outbound `wasi:http/client`) and answers with its status and body.
//! - `/env`: the environment the guest sees.
//! - hostile: `/pending` (never answers), `/forever` (a body that never ends), `/unclosed`
//!   (a body stream never closed), `/drop` (drops the body stream mid-transfer with an error),
//!   `/swarm?N` (N concurrent subtasks), `/spawn-pending` (answers, but leaves a task that never
//!   finishes), `/trap`, `/spin`, `/hog`, `/forge-log` (writes lines to stdout and stderr, through
//!   `wasi:cli@0.3` streams, that imitate wharf's access log with a carriage return and terminal
//!   escapes, then 1 MiB more).
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::clocks::monotonic_clock;
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use wasip3::wit_bindgen::{StreamResult, spawn_local, yield_async};
use wasip3::{wit_future, wit_stream};

struct Service;

wasip3::http::service::export!(Service);

static COUNT: AtomicU64 = AtomicU64::new(0);

type Trailers = Result<Option<Fields>, ErrorCode>;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_with_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
        match path {
            "/" => Ok(text(200, "Hello from a WASI 0.3 component!\n".into())),
            "/count" => Ok(text(200, format!("count {}\n", COUNT.fetch_add(1, Ordering::Relaxed) + 1))),
            "/env" => Ok(text(200, std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect())),
            "/echo" => Ok(echo(request)),
            "/trailers" => {
                let trailers = Fields::from_list(&[("x-checksum".into(), b"abc123".to_vec())]).unwrap();
                // HTTP/1.1 servers (hyper) send only the trailers a `Trailer` header declares.
                Ok(body_with(b"with trailers\n".to_vec(), Ok(Some(trailers)), &[("trailer", b"x-checksum")]))
            }
            "/fetch" => fetch(query).await,
            "/pending" => {
                let (writer, reader) = wit_future::new::<Trailers>(|| Ok(None));
                let _ = reader.await;
                drop(writer);
                Ok(text(200, "unreachable\n".into()))
            }
            "/spawn-pending" => {
                spawn_local(async {
                    let (writer, reader) = wit_future::new::<Trailers>(|| Ok(None));
                    let _ = reader.await;
                    drop(writer);
                });
                Ok(text(200, "answered, a task left behind\n".into()))
            }
            "/forever" => Ok(forever()),
            "/unclosed" => Ok(unclosed()),
            "/drop" => Ok(dropped()),
            "/swarm" => Ok(text(200, swarm(query.parse().unwrap_or(1000)).await)),
            "/trap" => panic!("the guest panics on /trap"),
            "/spin" => loop {
                std::hint::black_box(());
            },
            "/hog" => {
                let mut held = Vec::new();
                loop {
                    held.push(vec![1u8; 1 << 20]);
                    yield_async().await;
                }
            }
            "/forge-log" => {
                let forged = "2026-12-01T00:00:00.000000Z  INFO wharf::access: GET /admin 200 - 0.100ms";
                let mut out = format!("\r\x1b[2K{forged}\n").into_bytes();
                out.extend(std::iter::repeat_n(b'f', 1 << 20));
                write_to(wasip3::cli::stdout::write_via_stream, out).await;
                write_to(
                    wasip3::cli::stderr::write_via_stream,
                    format!("{forged}\nsecond line\x1b[31m\n").into_bytes(),
                )
                .await;
                Ok(text(200, "forged".into()))
            }
            _ => Ok(text(404, format!("no such path {path}\n"))),
        }
    }
}

/// Writes `bytes` to stdout or stderr (`write_via_stream` of either) and waits until done.
async fn write_to(
    write_via_stream: fn(
        wasip3::wit_bindgen::StreamReader<u8>,
    ) -> wasip3::wit_bindgen::FutureReader<Result<(), wasip3::cli::types::ErrorCode>>,
    bytes: Vec<u8>,
) {
    let (mut tx, rx) = wit_stream::new();
    let done = write_via_stream(rx);
    tx.write_all(bytes).await;
    drop(tx);
    let _ = done.await;
}

fn text(status: u16, body: String) -> Response {
    let response = body_with(body.into_bytes(), Ok(None), &[]);
    response.set_status_code(status).unwrap();
    response
}

/// A response whose whole body is `bytes`, then `trailers`.
fn body_with(bytes: Vec<u8>, trailers: Trailers, extra: &[(&str, &[u8])]) -> Response {
    let mut list = vec![("content-type".to_string(), b"text/plain".to_vec())];
    list.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_vec())));
    let headers = Fields::from_list(&list).unwrap();
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
    spawn_local(async move {
        tx.write_all(bytes).await;
        drop(tx);
        let _ = trailers_tx.write(trailers).await;
    });
    response
}

/// Streams the request body back chunk by chunk: nothing is buffered beyond one chunk, so a
/// body larger than the guest's memory passes through (back-pressure both ways).
fn echo(request: Request) -> Response {
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    let (mut input, input_trailers) = Request::consume_body(request, done_rx);
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[("x-echo".into(), b"p3".to_vec())]).unwrap();
    let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
    spawn_local(async move {
        let mut total = 0usize;
        loop {
            let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
            total += chunk.len();
            if !chunk.is_empty() && !tx.write_all(chunk).await.is_empty() {
                break;
            }
            if matches!(status, StreamResult::Dropped | StreamResult::Cancelled) {
                break;
            }
        }
        drop(tx);
        let trailers = input_trailers.await;
        let _ = done_tx.write(Ok(())).await;
        let _ = total;
        let _ = trailers_tx.write(trailers).await;
    });
    response
}

async fn fetch(url: &str) -> Result<Response, ErrorCode> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(text(400, format!("not a URL: {url}\n")));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (outgoing, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    outgoing.set_method(&Method::Get).unwrap();
    outgoing.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http })).unwrap();
    outgoing.set_authority(Some(authority)).unwrap();
    outgoing.set_path_with_query(Some(path)).unwrap();
    match client::send(outgoing).await {
        Ok(response) => {
            let status = response.get_status_code();
            let (done_tx, done_rx) = wit_future::new(|| Ok(()));
            let (body, _trailers) = Response::consume_body(response, done_rx);
            let bytes = body.collect().await;
            drop(done_tx);
            Ok(text(200, format!("upstream {status}: {}", String::from_utf8_lossy(&bytes))))
        }
        Err(e) => Ok(text(502, format!("fetch failed: {e:?}\n"))),
    }
}

/// A body that never ends: a chunk every 10 ms, forever.
fn forever() -> Response {
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
    spawn_local(async move {
        loop {
            if !tx.write_all(b"tick\n".to_vec()).await.is_empty() {
                break;
            }
            monotonic_clock::wait_for(10_000_000).await;
        }
        drop(trailers_tx);
    });
    response
}

/// Sends a little of the body, then keeps the stream (and the trailers) open forever.
fn unclosed() -> Response {
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
    spawn_local(async move {
        tx.write_all(b"partial".to_vec()).await;
        let (writer, reader) = wit_future::new::<Trailers>(|| Ok(None));
        let _ = reader.await;
        drop((writer, tx, trailers_tx));
    });
    response
}

/// Sends 64 KiB, then drops the stream and ends the body with an error.
fn dropped() -> Response {
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
    spawn_local(async move {
        tx.write_all(vec![b'x'; 64 * 1024]).await;
        drop(tx);
        let _ = trailers_tx.write(Err(ErrorCode::InternalError(Some("dropped mid-transfer".into())))).await;
    });
    response
}

async fn swarm(n: u32) -> String {
    let done = Rc::new(Cell::new(0u32));
    for _ in 0..n {
        let done = done.clone();
        spawn_local(async move {
            monotonic_clock::wait_for(1_000_000).await;
            done.set(done.get() + 1);
        });
    }
    while done.get() < n {
        monotonic_clock::wait_for(1_000_000).await;
    }
    format!("{} subtasks finished\n", done.get())
}
