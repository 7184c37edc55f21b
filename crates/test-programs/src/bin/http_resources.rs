#![no_main]
//! Hostile `wasi:http/proxy`: `/KIND?count=N&bytes=B` creates N host resources and never drops
//! one (see `resource_bomb.rs`: `pollables`, `fields`, `bodies`), then answers how many it holds.
#[path = "../resource_bomb.rs"]
mod resource_bomb;

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Resources;

fn query_param(query: &str, name: &str) -> Option<usize> {
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

impl wasip2::exports::http::incoming_handler::Guest for Resources {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
        let (status, text) = match resource_bomb::Kind::parse(path.trim_start_matches('/')) {
            Some(kind) => {
                let count = query_param(query, "count").unwrap_or(1_000_000);
                let bytes = query_param(query, "bytes").unwrap_or(0);
                match resource_bomb::hoard(kind, count, bytes, |_| {}) {
                    Ok(n) => (200, format!("done: {n} {kind:?} held\n")),
                    Err(e) => (500, format!("error: {e}\n")),
                }
            }
            None => (200, "Hello from http_resources\n".to_string()),
        };
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).unwrap();
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(text.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}

wasip2::http::proxy::export!(Resources);
