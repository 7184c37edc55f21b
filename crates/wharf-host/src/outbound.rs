//! Outbound `wasi:http` requests, allowed only to hosts the policy grants.
use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::policy::NetRule;
use crate::policy::net::default_port;

type ResponseFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

/// The `wasi:http` hooks of one store: every outgoing request is checked against the granted
/// rules by scheme, host name (wildcards included) and port before anything is sent. A denied
/// request fails with `HTTP-request-denied`, which the guest sees as an error, not a hang.
/// The guest cannot pick the `Host` header: wasmtime-wasi-http forbids it and sets it from
/// the URL's authority, which is what is checked here.
#[derive(Clone, Default)]
pub(crate) struct OutboundHttp {
    rules: Arc<[NetRule]>,
}

impl OutboundHttp {
    pub(crate) fn new(rules: Arc<[NetRule]>) -> Self {
        OutboundHttp { rules }
    }

    fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else { return false };
        let port = uri.port_u16().unwrap_or_else(|| default_port(scheme));
        self.rules.iter().any(|rule| rule.matches_http(scheme, host, port))
    }
}

/// The most an outgoing body's stream takes per write. wasmtime-wasi-http buffers two such
/// chunks per body until it is sent; its 1 MiB default let a guest that hoards unsent bodies
/// make wharf hold 2 MiB each (measured). 64 KiB caps that at about 130 KiB per body, so the
/// resource-table cap ([`crate::sandbox`]) bounds the total; guests are told what fits by
/// `check-write`, and std and `blocking-write-and-flush` write 4 KiB at a time anyway.
const OUTGOING_BODY_CHUNK: usize = 64 * 1024;

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(uri = %request.uri(), "outbound HTTP request denied by policy");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}
