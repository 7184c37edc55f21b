//! `native-hello [ADDR]`: answers every request with a fixed greeting over HTTP/1.1, the way
//! `wharf serve` runs hyper (a multi-threaded tokio runtime, one task per connection), minus
//! the component. bench/serve.sh measures it in the same wrk run as the Wasm servers.
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18083".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("Serving HTTP on http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello)).await;
        });
    }
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello from a native server!\n")));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
    Ok(response)
}
