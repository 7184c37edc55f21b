//! The MCP server (rmcp): `tools/list` and `tools/call` over a [`Toolbox`], on stdio or
//! streamable HTTP.
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, Response, StatusCode};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::{StreamableHttpService, session::local::LocalSessionManager};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::gate::{self, HttpLimits, Sessions};
use crate::held::{Client, Held};
use crate::talk::{LogFilter, Talk};
use crate::toolbox::{Caller, Outcome, Session, ToolComponent, Toolbox};
use crate::{jsonrpc, manage, reply};

/// The MCP path of the HTTP transport.
pub const MCP_PATH: &str = "/mcp";

/// Protocol versions offered, newest first. From 2026-07-28 on there are no sessions: handles
/// address server-held instances instead (`held.rs`).
const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2026_07_28,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

/// Loads a component the model names in `wharf.load`, under the server's own policy (the
/// model never chooses grants). Implemented by the binary, which knows files and registries.
pub trait Loader: Send + Sync + 'static {
    /// Reads, compiles, links and sandboxes `source`.
    fn load(&self, source: String) -> Pin<Box<dyn Future<Output = anyhow::Result<ToolComponent>> + Send + '_>>;
}

/// What every session of one server shares.
struct Shared {
    toolbox: Arc<Toolbox>,
    // `Some` with `--allow-load`: the `wharf.*` management tools exist.
    loader: Option<Arc<dyn Loader>>,
    // The cap on components loaded by all sessions together.
    loads: Arc<tokio::sync::Semaphore>,
    // Instances of stateless (2026-07-28) clients, addressed by their handles.
    held: Arc<Held>,
}

/// One MCP session's handler: the shared tools and this session's instances and handles.
#[derive(Clone)]
pub struct McpHandler {
    shared: Arc<Shared>,
    session: Arc<Session>,
    // The level the client set with `logging/setLevel`, for guests' log messages.
    logs: LogFilter,
}

impl McpHandler {
    /// A handler for the first session over `toolbox`; `loader` enables `wharf.load`,
    /// `wharf.unload` and `wharf.list` (for clients with sessions). Instances held for
    /// stateless clients go after `held_idle` without a call. Needs a Tokio runtime.
    pub fn new(toolbox: Arc<Toolbox>, loader: Option<Arc<dyn Loader>>, held_idle: Duration) -> Self {
        let session = Arc::new(toolbox.session());
        let held = Held::new(toolbox.clone(), held_idle);
        let shared = Arc::new(Shared { toolbox, loader, loads: manage::load_cap(), held });
        McpHandler { shared, session, logs: LogFilter::default() }
    }

    fn for_new_session(&self) -> Self {
        let session = Arc::new(self.shared.toolbox.session());
        McpHandler { shared: self.shared.clone(), session, logs: LogFilter::default() }
    }

    /// The tools this session sees: the command line's, and those it loaded itself. A
    /// stateless client (`modern`) sees the command line's only: no session, nothing loaded.
    fn tools(&self, modern: bool) -> Vec<Tool> {
        let snapshot = if modern { self.shared.toolbox.snapshot() } else { self.session.snapshot() };
        let mut tools: Vec<Tool> = snapshot
            .functions()
            .map(|f| {
                let description =
                    f.description.clone().unwrap_or_else(|| format!("Calls the WIT function `{}`.", f.name));
                let tool = Tool::new(f.name.clone(), description, f.input_schema.clone());
                match &f.output_schema {
                    Some(schema) => tool.with_raw_output_schema(schema.clone()),
                    None => tool,
                }
            })
            .collect();
        if self.shared.loader.is_some() && !modern {
            tools.extend(manage::tools(self.shared.toolbox.tool_names()));
        }
        tools
    }

    /// What the server can do for a client; `tools.listChanged` only where tools can change
    /// (`--allow-load`, for clients with sessions).
    #[allow(deprecated)] // logging is deprecated only from protocol 2026-07-28 on (SEP-2577)
    fn capabilities(&self, modern: bool) -> ServerCapabilities {
        // `logging`: guests send log messages through `wharf:mcp/context`.
        match self.shared.loader {
            Some(_) if !modern => {
                ServerCapabilities::builder().enable_tools().enable_tool_list_changed().enable_logging().build()
            }
            _ => ServerCapabilities::builder().enable_tools().enable_logging().build(),
        }
    }
}

/// Whether the request comes from a stateless client (protocol 2026-07-28 or later).
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context.protocol_version().is_some_and(|version| !version.has_initialize())
}

/// Who a stateless request comes from: the HTTP peer's address, or the stdio client.
fn client_of(context: &RequestContext<RoleServer>) -> Client {
    context
        .extensions
        .get::<hyper::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<wharf_http::PeerAddr>())
        .map_or(Client::Stdio, |peer| Client::Address(peer.0.ip()))
}

/// The log level a stateless request opted in to in its `_meta`; without one it gets no log
/// messages at all (2026-07-28: servers MUST NOT send them then).
fn request_logs(context: &RequestContext<RoleServer>) -> LogFilter {
    let level = context.meta.log_level().and_then(|level| serde_json::to_value(level).ok());
    let filter = LogFilter::off();
    if let Some(Value::String(level)) = level {
        filter.set(&level);
    }
    filter
}

/// The MCP result of a call: JSON as `structuredContent` and the same JSON as text.
pub fn call_result(outcome: Outcome) -> CallToolResult {
    match outcome {
        Outcome::Returned(Some(value)) => CallToolResult::structured(json!({ "result": value })),
        Outcome::Returned(None) => CallToolResult::structured(Value::Object(Map::new())),
        Outcome::ErrResult(value) => CallToolResult::structured_error(json!({ "result": value })),
        Outcome::Invalid(e) => CallToolResult::error(vec![ContentBlock::text(format!("invalid arguments: {e}"))]),
        Outcome::Failed(failure) => CallToolResult::error(vec![ContentBlock::text(failure.to_string())]),
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(self.capabilities(false))
            .with_server_info(Implementation::new("wharf", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
            .with_instructions(
                "Each tool is a function exported by a sandboxed WebAssembly component. \
                 Handles returned by a tool are valid only in this session.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn discover(&self, _context: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        // Only stateless clients discover: no loading for them, and handles outlive requests.
        let info = InitializeResult::new(self.capabilities(true))
            .with_server_info(Implementation::new("wharf", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool is a function exported by a sandboxed WebAssembly component. A handle returned \
                 by a tool names a resource held by the server for this client; pass it to later calls. \
                 It is released when passed as an owned argument, and expires when unused for a while.",
            );
        Ok(DiscoverResult::from_server_info(PROTOCOL_VERSIONS.to_vec(), info))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let modern = is_modern(&context);
        let result = ListToolsResult::with_all_items(self.tools(modern));
        // 2026-07-28 requires caching hints. The list is fixed while the server runs; a minute
        // bounds how long a client keeps it across a restart with other components.
        Ok(if modern { result.with_ttl_ms(60_000).with_cache_scope(CacheScope::Private) } else { result })
    }

    #[allow(deprecated)] // logging is deprecated only from protocol 2026-07-28 on (SEP-2577)
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let level = serde_json::to_value(request.level).unwrap_or_default();
        match level.as_str() {
            Some(level) if self.logs.set(level) => Ok(()),
            _ => Err(ErrorData::invalid_params(format!("unknown log level {level}"), None)),
        }
    }

    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, ErrorData> {
        // rmcp reads a `tools/call` it cannot parse (no `name`, `arguments` not an object) as
        // an unknown method; the method is known, its parameters are wrong.
        if request.method == "tools/call" {
            let why = "tools/call needs params {\"name\": TOOL, \"arguments\": {...}} with `name` a string and \
                       `arguments` an object";
            return Err(ErrorData::invalid_params(why, None));
        }
        Err(ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            format!("unknown method `{}`", request.method),
            None,
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let modern = is_modern(&context);
        if let Some(loader) = &self.shared.loader
            && !modern
            && let Some(result) = manage::call(
                &self.session,
                loader.as_ref(),
                &self.shared.loads,
                self.shared.toolbox.tool_names(),
                &request.name,
                &args,
            )
            .await
        {
            // Only this session's tool list changed: loaded tools are its own.
            if result.changed
                && let Err(e) = context.peer.notify_tool_list_changed().await
            {
                tracing::debug!("cannot notify the client of its new tool list: {e}");
            }
            return Ok(result.result.into());
        }
        let started = std::time::Instant::now();
        let logs = if modern { request_logs(&context) } else { self.logs.clone() };
        let talk = Talk::new(context.peer.clone(), context.meta.get_progress_token(), logs);
        let caller = Caller { talk, cancel: context.ct.clone() };
        let outcome = match modern {
            true => self.shared.held.call(&request.name, &args, &caller, client_of(&context)).await,
            false => self.session.call_as(&request.name, &args, &caller).await,
        };
        let Some(outcome) = outcome else {
            return Err(ErrorData::invalid_params(format!("unknown tool `{}`", request.name), None));
        };
        let status = match &outcome {
            Outcome::Returned(_) => "ok",
            Outcome::ErrResult(_) => "err",
            Outcome::Invalid(_) => "invalid arguments",
            Outcome::Failed(_) => "failed",
        };
        tracing::info!(target: "wharf::calls", tool = %request.name, status, elapsed = ?started.elapsed());
        if let Outcome::Failed(failure) = &outcome {
            tracing::warn!(tool = %request.name, "{failure}");
        }
        let mut result = call_result(outcome);
        // Content the guest added (images, resources, ...) is the result's content.
        let added = caller.talk.content();
        if let Some(why) = caller.talk.overflow() {
            result = CallToolResult::error(vec![ContentBlock::text(why)]);
        } else if !added.is_empty() {
            result.content = added;
        }
        Ok(result.into())
    }
}

/// Serves MCP on stdin/stdout until the client closes stdin.
/// Instances held for stateless clients go after `held_idle` without a call.
pub async fn serve_stdio(
    toolbox: Arc<Toolbox>,
    loader: Option<Arc<dyn Loader>>,
    held_idle: Duration,
) -> anyhow::Result<()> {
    let (stdin, stdout) = rmcp::transport::stdio();
    serve_lines(McpHandler::new(toolbox, loader, held_idle), stdin, stdout).await
}

/// Serves MCP on newline-delimited JSON-RPC: rmcp behind a filter that answers lines that are
/// not JSON with `-32700` (rmcp ignores them, leaving the client waiting).
async fn serve_lines(
    handler: McpHandler,
    input: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    output: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
) -> anyhow::Result<()> {
    let (to_rmcp, rmcp_in) = tokio::io::duplex(64 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(64 * 1024);
    let output: Arc<tokio::sync::Mutex<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>> =
        Arc::new(tokio::sync::Mutex::new(Box::new(output)));
    let filter = tokio::spawn({
        let output = output.clone();
        async move { jsonrpc::filter_lines(input, to_rmcp, &output).await }
    });
    let copy = tokio::spawn({
        let output = output.clone();
        async move { jsonrpc::copy_lines(from_rmcp, &output).await }
    });
    let service = handler.serve((rmcp_in, rmcp_out)).await;
    let result = match service {
        Ok(service) => service.waiting().await.map(drop).map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    filter.abort();
    // rmcp's last replies are in the pipe: let them reach the client.
    let _ = copy.await;
    result
}

/// Serves streamable HTTP at [`MCP_PATH`] on `listener` until `shutdown` resolves. Requests
/// whose `Host` is not a loopback name or the listening address, or that carry a foreign
/// `Origin`, are refused (DNS rebinding); connections, sessions and (optionally) a bearer
/// token are checked per [`HttpLimits`] before rmcp sees a request.
pub async fn serve_http(
    toolbox: Arc<Toolbox>,
    loader: Option<Arc<dyn Loader>>,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let config = http_config(address);
    let cancel = config.cancellation_token.clone();
    let first = McpHandler::new(toolbox, loader, limits.held_idle_timeout);
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(limits.session_idle_timeout);
    let manager = Arc::new(manager);
    let sessions = Sessions::new(manager.clone(), limits.clone());
    let service = StreamableHttpService::new(move || Ok(first.for_new_session()), manager, config);
    let reaper = {
        let sessions = sessions.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                sessions.expire().await;
            }
        })
    };
    let body_timeout = limits.listener.header_timeout;
    let gate = Arc::new(Gate { service, sessions, token: limits.bearer_token.clone(), body_timeout });
    let handler = move |request| {
        let gate = gate.clone();
        async move { gate.route(request).await }
    };
    let graceful = wharf_http::listener::serve(listener, limits.listener, handler, shutdown).await;
    reaper.abort();
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// The checks in front of rmcp's service.
struct Gate {
    service: StreamableHttpService<McpHandler, LocalSessionManager>,
    sessions: Arc<Sessions>,
    token: Option<String>,
    /// Time a POST's JSON-RPC body has to arrive once its headers have (`--header-timeout`):
    /// the body is read before anything else sees the request, and a client that trickles it
    /// must not keep its connection busy (never closed to make room) for ever.
    body_timeout: Duration,
}

impl Gate {
    async fn route(&self, request: Request<hyper::body::Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
        if request.uri().path() != MCP_PATH {
            return plain(StatusCode::NOT_FOUND, format!("not found: MCP is served at {MCP_PATH}\n"));
        }
        if let Some(token) = &self.token {
            let given = request.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes());
            if !gate::bearer_matches(token, given) {
                let mut response = plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required\n".into());
                response
                    .headers_mut()
                    .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        // A body that is not a JSON-RPC message gets 400 and a JSON-RPC error (rmcp: 415, plain
        // text), before it can cost a session.
        let (request, initialize) = if request.method() == hyper::Method::POST && is_json(&request) {
            match tokio::time::timeout(self.body_timeout, jsonrpc::check_post(request)).await {
                Ok(Ok(checked)) => {
                    (checked.request.map(|body| body.map_err(|never| match never {}).boxed()), checked.initialize)
                }
                Ok(Err(response)) => return response,
                Err(_) => {
                    let slow = format!("the request body did not arrive within {:?}\n", self.body_timeout);
                    let mut response = plain(StatusCode::REQUEST_TIMEOUT, slow);
                    // The rest of the body may still be on its way: do not wait to read it.
                    response
                        .headers_mut()
                        .insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                    return response;
                }
            }
        } else {
            (request.map(|body| body.boxed()), false)
        };
        let session = request.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        match &session {
            Some(id) => self.sessions.touch(id),
            // An `initialize` opens a session, if there is room. Stateless (2026-07-28) requests
            // open none, so they neither need room nor may close an unused session to make it.
            None if initialize && !self.sessions.admit().await => {
                let busy = "too many MCP sessions in use; try again later\n";
                return plain(StatusCode::SERVICE_UNAVAILABLE, busy.into());
            }
            None => {}
        }
        let is_delete = request.method() == hyper::Method::DELETE;
        let is_get = request.method() == hyper::Method::GET;
        let json = request.method() == hyper::Method::POST && reply::prefers_json(request.headers());
        let mut response = self.service.handle(request).await;
        if json {
            // rmcp streams every reply as SSE; one that is just the response goes as JSON.
            response = reply::prefer_json(response, reply::FIRST_MESSAGE_WAIT).await;
        }
        if is_get && response.status().is_success() {
            // A notification stream lives as long as the client keeps it; clients reopen it.
            // Marked evictable so that many of them (even of one session) cannot hold every
            // connection busy: at the cap the least recently active is closed for a newcomer.
            response.extensions_mut().insert(wharf_http::Evictable);
        }
        if session.is_none()
            && let Some(id) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
        {
            self.sessions.created(id);
        }
        if is_delete && let Some(id) = &session {
            self.sessions.deleted(id);
        }
        // rmcp accepts a session DELETE with 202; clients (the Python SDK) expect 200 or 204.
        if is_delete && response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        response
    }
}

fn plain(status: StatusCode, text: String) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
    *response.status_mut() = status;
    response
}

/// Whether the request says its body is JSON (otherwise rmcp answers `415`, rightly).
fn is_json<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
fn http_config(address: SocketAddr) -> StreamableHttpServerConfig {
    let ip = address.ip().to_string();
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into(), "[::1]".into()];
    if !hosts.contains(&ip) {
        hosts.push(ip);
    }
    let origins = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];
    StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
}
