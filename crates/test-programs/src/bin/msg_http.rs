#![no_main]
//! A `wasi:http/proxy` component that uses `wasi:messaging`:
//! - `GET /publish/SUBJECT/DATA`: sends DATA to SUBJECT, answers `sent` or `error: ...` (403);
//! - `GET /request/SUBJECT/DATA`: request-reply, answers the first reply's payload;
//! - `GET /kv/KEY`: the value of KEY in key-value bucket `msgs` (404 when absent).
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/msg-http",
    generate_all,
});

use wasi::keyvalue::store;
use wasi::messaging::types::{Client, Error, Message};
use wasi::messaging::{producer, request_reply};

fn route(path: &str) -> (u16, Vec<u8>) {
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let err = |e: Error| (403, format!("error: {e:?}\n").into_bytes());
    match parts.as_slice() {
        ["publish", subject, data] => {
            let client = match Client::connect("default") {
                Ok(c) => c,
                Err(e) => return err(e),
            };
            match producer::send(&client, subject, Message::new(data.as_bytes())) {
                Ok(()) => (200, b"sent\n".to_vec()),
                Err(e) => err(e),
            }
        }
        ["request", subject, data] => {
            let client = match Client::connect("default") {
                Ok(c) => c,
                Err(e) => return err(e),
            };
            let options = request_reply::RequestOptions::new();
            options.set_timeout_ms(5000);
            match request_reply::request(&client, subject, &Message::new(data.as_bytes()), Some(options)) {
                Ok(replies) => (200, replies.first().map(|m| m.data()).unwrap_or_default()),
                Err(e) => err(e),
            }
        }
        ["kv", key] => match store::open("msgs").and_then(|b| b.get(key)) {
            Ok(Some(value)) => (200, value),
            Ok(None) => (404, b"absent\n".to_vec()),
            Err(e) => (500, format!("error: {e:?}\n").into_bytes()),
        },
        _ => (404, b"unknown\n".to_vec()),
    }
}

struct Http;

impl wasip2::exports::http::incoming_handler::Guest for Http {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = route(&path);
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(status).unwrap();
        let out = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let stream = out.write().unwrap();
        stream.blocking_write_and_flush(&body).unwrap();
        drop(stream);
        OutgoingBody::finish(out, None).unwrap();
    }
}

wasip2::http::proxy::export!(Http);
