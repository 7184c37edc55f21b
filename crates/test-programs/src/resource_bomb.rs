//! Shared by `cli_resources` and `http_resources`: create host resources in a loop and never drop
//! them, so every one stays in the host's resource table.
use wasip2::http::types::{Fields, OutgoingResponse};

/// What to hoard.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `wasi:clocks/monotonic-clock.subscribe-duration` pollables (small host objects).
    Pollables,
    /// `wasi:http/types.fields`, each filled with a header value of `bytes` bytes.
    Fields,
    /// `wasi:http/types.outgoing-body` output streams, each written until it takes no more (at
    /// most `bytes` bytes): the host buffers what is written, nothing reads it.
    Bodies,
}

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "pollables" => Some(Kind::Pollables),
            "fields" => Some(Kind::Fields),
            "bodies" => Some(Kind::Bodies),
            _ => None,
        }
    }
}

/// Creates `count` resources of `kind`, forgetting every handle; `progress` is called every
/// 10,000. Returns how many were made, or the first error the host reported as a value.
pub fn hoard(kind: Kind, count: usize, bytes: usize, mut progress: impl FnMut(usize)) -> Result<usize, String> {
    let value = vec![b'x'; bytes];
    for i in 1..=count {
        match kind {
            Kind::Pollables => std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1_000_000_000)),
            Kind::Fields => {
                let fields = Fields::new();
                if bytes > 0 {
                    fields.append("x-bomb", &value).map_err(|e| format!("fields #{i}: append: {e:?}"))?;
                }
                std::mem::forget(fields);
            }
            Kind::Bodies => {
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().map_err(|()| format!("body #{i}: no body"))?;
                let stream = body.write().map_err(|()| format!("body #{i}: no stream"))?;
                let mut left = bytes;
                while left > 0 {
                    let n = match stream.check_write() {
                        Ok(0) | Err(_) => break,
                        Ok(n) => (n as usize).min(left),
                    };
                    if stream.write(&value[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
                std::mem::forget((response, body, stream));
            }
        }
        if i % 10_000 == 0 {
            progress(i);
        }
    }
    Ok(count)
}
