#![no_main]
//! A `wasi:messaging/incoming-handler` for message triggers, by subject:
//! - `orders.*`: stores the payload in key-value bucket `msgs` under the subject;
//! - `work.*`: publishes the payload to `done.<payload>` (queue-group counting);
//! - `echo.*`: replies `re: <payload>` (request-reply);
//! - `sneaky.*`: tries to publish to `forbidden.x` and stores the error under `denied`;
//!
//! - `jobs.*` (JetStream triggers): counts its attempts at each payload in `attempts.<payload>`
//!   (the first 64 bytes), then a payload starting with `fail` returns an error every time, one
//!   starting with `flaky` on its first attempt only, one starting with `hang` never returns;
//!
//! and a payload of `fail` returns an error.
wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/msg-handler",
    generate_all,
});

use wasi::keyvalue::store;
use wasi::messaging::types::{Client, Error, Message};
use wasi::messaging::{producer, request_reply};

struct Handler;

fn store_kv(key: &str, value: &[u8]) -> Result<(), Error> {
    let bucket = store::open("msgs").map_err(|e| Error::Other(format!("{e:?}")))?;
    bucket.set(key, value).map_err(|e| Error::Other(format!("{e:?}")))
}

fn job(data: &[u8]) -> Result<(), Error> {
    let id = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
    let bucket = store::open("msgs").map_err(|e| Error::Other(format!("{e:?}")))?;
    let key = format!("attempts.{id}");
    let previous = bucket.get(&key).map_err(|e| Error::Other(format!("{e:?}")))?;
    let attempt = previous.and_then(|v| String::from_utf8(v).ok()?.parse::<u32>().ok()).unwrap_or(0) + 1;
    store_kv(&key, attempt.to_string().as_bytes())?;
    if id.starts_with("fail") || (id.starts_with("flaky") && attempt == 1) {
        return Err(Error::Other(format!("attempt {attempt} at {id} fails")));
    }
    if id.starts_with("hang") {
        #[allow(clippy::empty_loop)]
        loop {}
    }
    Ok(())
}

impl exports::wasi::messaging::incoming_handler::Guest for Handler {
    fn handle(message: Message) -> Result<(), Error> {
        let subject = message.topic().unwrap_or_default();
        let data = message.data();
        if subject.starts_with("jobs.") {
            return job(&data);
        }
        if data == b"fail" {
            return Err(Error::Other("asked to fail".into()));
        }
        let client = Client::connect("default")?;
        match subject.split('.').next() {
            Some("orders") => store_kv(&subject, &data),
            Some("work") => {
                let id = String::from_utf8_lossy(&data).into_owned();
                producer::send(&client, &format!("done.{id}"), Message::new(&data))
            }
            Some("echo") => {
                let mut reply = b"re: ".to_vec();
                reply.extend_from_slice(&data);
                request_reply::reply(&message, Message::new(&reply))
            }
            Some("sneaky") => {
                let outcome = producer::send(&client, "forbidden.x", Message::new(b"x"));
                store_kv("denied", format!("{outcome:?}").as_bytes())
            }
            _ => Err(Error::Other(format!("unexpected subject {subject}"))),
        }
    }
}

export!(Handler);
