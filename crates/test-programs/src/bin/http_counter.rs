#![no_main]
//! A `wasi:http/proxy` component with state: each request increments `count` in the
//! `wasi:keyvalue` bucket `hits` and answers `hits: N`, or `error: ...` with status 500 when the
//! bucket cannot be used (e.g. not granted).
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({
    path: "../wharf-keyvalue/wit/draft2",
    world: "wasi:keyvalue/imports",
    generate_all,
});

use wasi::keyvalue::{atomics, store};

fn count() -> Result<i64, store::Error> {
    let bucket = store::open("hits")?;
    atomics::increment(&bucket, "count", 1)
}

struct Counter;

impl wasip2::exports::http::incoming_handler::Guest for Counter {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, text) = match count() {
            Ok(n) => (200, format!("hits: {n}\n")),
            Err(store::Error::AccessDenied) => (500, "error: access-denied\n".to_string()),
            Err(e) => (500, format!("error: {e:?}\n")),
        };
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).unwrap();
        let body = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(text.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}

wasip2::http::proxy::export!(Counter);
