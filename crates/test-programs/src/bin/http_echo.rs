#![no_main]
//! A `wasi:http/proxy` component for the serve tests. Routes on the path:
//! - `/echo`: sends the request body back; method, path+query and every request header
//!   come back as `x-method`, `x-path-with-query` and `x-echo-NAME` headers.
//! - `/big?bytes=N`: streams N bytes of a repeating pattern.
//! - `/fetch?url=http://HOST:PORT/PATH[&host=NAME]`: makes an outbound GET (with a `Host`
//!   header when `host` is given) and returns the upstream body, or 502 with the error.
//! - `/forever`: a response body that never ends.
//! - `/sleep?ms=N`: waits N milliseconds, then answers `slept N ms`.
//! - `/loop`: spins forever; `/trap`: panics; `/memory?mb=N`: allocates N MiB.
//! - `/env`: prints the environment; anything else: a greeting naming this component.
//! - `/forge-log`: writes lines to stdout and stderr that imitate wharf's access log, with a
//!   carriage return and terminal escapes, then 1 MiB more (to forge or flood the server log).
//! - `/lookups?name=SUFFIX&n=N`: starts N name lookups (`0.SUFFIX`, `1.SUFFIX`, ...) at once
//!   without waiting for them, and answers how many started and how many were refused.
//! - `/read?path=PATH`: answers the file's contents.
//! - `/residue`: looks through the whole linear memory for a marker an earlier request on the
//!   same instance would have left, then leaves it in four places (the lowest 64 KiB, a static,
//!   the heap, the stack); answers `clean` or `seen N` (how many copies it found).
use std::io::{Read, Write};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Echo;

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn respond(out: ResponseOutparam, status: u16, headers: Vec<(String, Vec<u8>)>, write: impl FnOnce(&mut dyn Write)) {
    let response = OutgoingResponse::new(Fields::from_list(&headers).unwrap());
    response.set_status_code(status).unwrap();
    let body = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = body.write().unwrap();
        write(&mut stream);
        stream.flush().unwrap();
    }
    OutgoingBody::finish(body, None).unwrap();
}

fn fetch(url: &str, host_header: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let headers = Fields::new();
    if let Some(host) = host_header {
        headers.append("host", host.as_bytes()).map_err(|e| format!("cannot set Host: {e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Get).unwrap();
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some(authority)).unwrap();
    request.set_path_with_query(Some(&path)).unwrap();
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response =
        future.get().ok_or("no response")?.map_err(|()| "response taken twice")?.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body")?;
    let mut bytes = Vec::new();
    body.stream().map_err(|()| "no stream")?.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok((status, bytes))
}

/// The marker `/residue` leaves, XORed with a key only known at run time, so that neither the
/// data segment nor the scan itself ever holds the marker.
const RESIDUE: &[u8; 16] = b"wharf-residue-00";

static mut RESIDUE_STATIC: [u8; 16] = [0; 16];

/// How many copies of the marker linear memory holds (see `/residue`), then leaves four more.
fn residue() -> usize {
    let key = std::hint::black_box(0x5au8);
    let size = core::arch::wasm32::memory_size(0) * 65536;
    let byte = |addr: usize| unsafe { core::ptr::read_volatile(addr as *const u8) } ^ key;
    let mut seen = 0;
    for addr in 1..size - RESIDUE.len() {
        if byte(addr) == RESIDUE[0] && (1..RESIDUE.len()).all(|i| byte(addr + i) == RESIDUE[i]) {
            seen += 1;
        }
    }
    let marker: [u8; 16] = std::array::from_fn(|i| RESIDUE[i] ^ key);
    unsafe {
        // The lowest 64 KiB: the far end of the 1 MiB stack that rustc puts first (checked:
        // the statics lie above it), which no request reaches.
        let statics = core::ptr::addr_of!(RESIDUE_STATIC) as usize;
        if statics > 0x20000 {
            core::ptr::write_volatile(0x1000 as *mut [u8; 16], marker);
        }
        core::ptr::write_volatile(core::ptr::addr_of_mut!(RESIDUE_STATIC), marker);
    }
    Box::leak(Box::new(marker));
    std::hint::black_box(&marker);
    seen
}

impl wasip2::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
        let text = vec![("content-type".to_string(), b"text/plain".to_vec())];
        match path {
            "/echo" => {
                let mut headers = vec![
                    ("x-method".to_string(), format!("{:?}", request.method()).into_bytes()),
                    ("x-path-with-query".to_string(), path_with_query.clone().into_bytes()),
                ];
                for (name, value) in request.headers().entries() {
                    headers.push((format!("x-echo-{name}"), value));
                }
                // Read the whole body before answering: a client that sends everything before
                // it reads (most do) would deadlock against a full-duplex echo.
                let body = request.consume().unwrap();
                let mut received = Vec::new();
                body.stream().unwrap().read_to_end(&mut received).unwrap();
                respond(out, 200, headers, |w| w.write_all(&received).unwrap());
            }
            "/big" => {
                let total: usize = query_param(query, "bytes").and_then(|n| n.parse().ok()).unwrap_or(0);
                respond(out, 200, text, |w| {
                    let chunk: Vec<u8> = (0..65536u32).map(|i| b'a' + (i % 26) as u8).collect();
                    let mut left = total;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        w.write_all(&chunk[..n]).unwrap();
                        left -= n;
                    }
                });
            }
            "/fetch" => match fetch(query_param(query, "url").unwrap_or_default(), query_param(query, "host")) {
                Ok((status, body)) => respond(out, 200, text, |w| {
                    write!(w, "upstream {status}: {}", String::from_utf8_lossy(&body)).unwrap()
                }),
                Err(e) => respond(out, 502, text, |w| write!(w, "outbound request failed: {e}").unwrap()),
            },
            "/sleep" => {
                let ms: u64 = query_param(query, "ms").and_then(|n| n.parse().ok()).unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                respond(out, 200, text, |w| write!(w, "slept {ms} ms").unwrap());
            }
            "/forever" => respond(out, 200, text, |w| {
                let chunk = [b'z'; 64 * 1024];
                while w.write_all(&chunk).is_ok() {}
            }),
            "/loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/trap" => panic!("the guest panicked on purpose"),
            "/memory" => {
                let mb: usize = query_param(query, "mb").and_then(|n| n.parse().ok()).unwrap_or(0);
                let chunks: Vec<Vec<u8>> = (0..mb).map(|_| vec![1u8; 1 << 20]).collect();
                respond(out, 200, text, |w| write!(w, "allocated {} MiB", chunks.len()).unwrap());
            }
            "/forge-log" => {
                let forged = "2026-12-01T00:00:00.000000Z  INFO wharf::access: GET /admin 200 - 0.100ms";
                println!("\r\x1b[2K{forged}");
                eprintln!("{forged}\nsecond line\x1b[31m");
                print!("{}", "f".repeat(1 << 20));
                respond(out, 200, text, |w| w.write_all(b"forged").unwrap());
            }
            "/env" => respond(out, 200, text, |w| {
                for (k, v) in std::env::vars() {
                    writeln!(w, "{k}={v}").unwrap();
                }
            }),
            "/lookups" => {
                let suffix = query_param(query, "name").unwrap_or_default();
                let n: usize = query_param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
                let network = wasip2::sockets::instance_network::instance_network();
                let (mut started, mut refused) = (Vec::new(), 0);
                for i in 0..n {
                    match wasip2::sockets::ip_name_lookup::resolve_addresses(&network, &format!("{i}.{suffix}")) {
                        Ok(stream) => started.push(stream),
                        Err(_) => refused += 1,
                    }
                }
                respond(out, 200, text, |w| write!(w, "started {}, refused {refused}", started.len()).unwrap());
            }
            "/read" => match std::fs::read(query_param(query, "path").unwrap_or_default()) {
                Ok(bytes) => respond(out, 200, text, |w| w.write_all(&bytes).unwrap()),
                Err(e) => respond(out, 500, text, |w| write!(w, "read failed: {e}").unwrap()),
            },
            "/residue" => match residue() {
                0 => respond(out, 200, text, |w| w.write_all(b"clean\n").unwrap()),
                n => respond(out, 200, text, |w| writeln!(w, "seen {n}").unwrap()),
            },
            _ => respond(out, 200, text, |w| w.write_all(b"hello from http_echo\n").unwrap()),
        }
    }
}

wasip2::http::proxy::export!(Echo);
