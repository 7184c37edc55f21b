#![no_main]
//! A `wasi:http/proxy` component that uses `wasi:messaging`:
//! - `GET /publish/SUBJECT/DATA`: sends DATA to SUBJECT, answers `sent` or `error: ...` (403);
//! - `GET /request/SUBJECT/DATA`: request-reply, answers the first reply's payload;
//! - `GET /kv/KEY`: the value of KEY in key-value bucket `msgs` (404 when absent);
//! - `GET /attack`: sends and requests to subjects no grant covers (wildcards, `_INBOX`, `$JS`,
//!   header injection, oversized), one `SUBJECT -> OUTCOME` line each;
//! - `GET /meta/SUBJECT`: sends to SUBJECT with `Nats-` control headers and 200 large entries;
//! - `GET /big/N`: builds an N-byte message and sends it to `orders.big`.
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
        ["attack"] => {
            let client = match Client::connect("default") {
                Ok(c) => c,
                Err(e) => return err(e),
            };
            let long = format!("orders.{}", "a".repeat(300));
            let subjects = [
                "orders.>",
                "orders.*",
                ">",
                "*",
                "orders",
                "orders.a.b",
                "payments.x",
                "_INBOX.x",
                "_INBOX.>",
                "orders.a\r\nPUB payments.x 1",
                "orders.a b",
                "orders. a",
                "",
                ".orders",
                "orders.\u{e9}",
                "$JS.API.STREAM.DELETE.JOBS",
                "$SYS.REQ.SERVER.PING",
                &long,
            ];
            let mut out = String::new();
            for subject in subjects {
                let sent = producer::send(&client, subject, Message::new(b"x"));
                let options = request_reply::RequestOptions::new();
                options.set_timeout_ms(100);
                let asked = request_reply::request(&client, subject, &Message::new(b"x"), Some(options)).map(|_| ());
                out += &format!("send {subject:?} -> {sent:?}\nrequest {subject:?} -> {asked:?}\n");
            }
            // A message it built has no reply subject to answer.
            let own = Message::new(b"x");
            out += &format!("reply own -> {:?}\n", request_reply::reply(&own, Message::new(b"y")));
            (200, out.into_bytes())
        }
        ["meta", subject] => {
            let client = match Client::connect("default") {
                Ok(c) => c,
                Err(e) => return err(e),
            };
            let message = Message::new(b"meta");
            for (key, value) in
                [("Nats-Rollup", "all"), ("nats-msg-id", "1"), ("Nats-Expected-Stream", "X"), ("X-Ok", "1")]
            {
                message.add_metadata(key, value);
            }
            message.add_metadata("X-Bad", "a\r\nNats-Rollup: all");
            message.add_metadata("X-Bad key", "1");
            for i in 0..200 {
                message.add_metadata(&format!("X-Fill-{i}"), &"v".repeat(3800 + i));
            }
            match producer::send(&client, subject, message) {
                Ok(()) => (200, b"sent\n".to_vec()),
                Err(e) => err(e),
            }
        }
        ["big", n] => {
            let client = match Client::connect("default") {
                Ok(c) => c,
                Err(e) => return err(e),
            };
            // Past the host's limit the constructor traps: the request fails, the server stays.
            let message = Message::new(&vec![b'x'; n.parse().unwrap_or(0)]);
            match producer::send(&client, "orders.big", message) {
                Ok(()) => (200, b"sent\n".to_vec()),
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
        // `blocking-write-and-flush` takes 4096 bytes at most per call.
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).unwrap();
        }
        drop(stream);
        OutgoingBody::finish(out, None).unwrap();
    }
}

wasip2::http::proxy::export!(Http);
