//! `wharf:mcp/context` (wit/context.wit): host functions a tool may import to talk back to the
//! MCP client while it runs: progress, log messages, MCP-native content blocks, sampling and
//! elicitation requests. Components that do not import it never see it.
//!
//! Each call gets a [`Talk`] in its store ([`HostState::extension`]); the content blocks the
//! guest adds are shared with the caller, which builds the result from them.
// rmcp marks logging and sampling deprecated (SEP-2577, protocol 2026-07-28); every revision
// Wharf negotiates up to 2025-11-25 has them, and the conformance suite tests them.
#![allow(deprecated)]
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use base64::Engine as _;
use rmcp::RoleServer;
use rmcp::model::{
    ContentBlock, CreateMessageRequestParams, ElicitRequestParams, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer;
use serde_json::{Value, json};
use wasmtime::component::{HasData, Linker};
use wharf_host::HostState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wharf:mcp/tool",
        imports: { default: async },
    });
}

use bindings::wharf::mcp::context::{
    self, Content, ElicitAction, ElicitResponse, LogLevel, ResourceBody, Role, SamplingRequest, SamplingResponse,
};

/// The most bytes of content blocks (payloads, texts, URIs and names) one call may add: what
/// the guest adds is copied out of its memory and kept until the result is sent, so without a
/// cap a guest limited to 16 MiB could make wharf hold gigabytes (one block after another).
pub const MAX_CONTENT_BYTES: usize = 8 * 1024 * 1024;

/// The most content blocks one call may add.
pub const MAX_CONTENT_BLOCKS: usize = 1024;

/// Log and progress messages (and log names) are cut to this many bytes: a notification may be
/// queued and kept for a client's reconnection (the HTTP transport keeps recent events), so
/// its size must not follow the guest's memory limit.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// The most bytes of text one sampling request may carry (messages and system prompt), and of
/// an elicitation's message and schema together.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How many log and progress notifications a call may send in a burst, and per second after
/// it (MCP: servers should rate-limit them); the rest are dropped.
pub const NOTE_BURST: f64 = 100.0;
/// See [`NOTE_BURST`].
pub const NOTES_PER_SECOND: f64 = 50.0;

/// MCP log levels, least severe first (as `logging/setLevel` names them).
const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// The level below which a session's log messages are not sent, shared by its calls.
#[derive(Clone, Debug)]
pub struct LogFilter(Arc<AtomicU8>);

impl Default for LogFilter {
    /// `info` until the client sets a level.
    fn default() -> Self {
        LogFilter(Arc::new(AtomicU8::new(1)))
    }
}

impl LogFilter {
    /// Lets no message through until a level is set (a stateless request that did not opt in).
    pub fn off() -> Self {
        LogFilter(Arc::new(AtomicU8::new(LEVELS.len() as u8)))
    }

    /// Sets the minimum level by its MCP name; `false` for an unknown name.
    pub fn set(&self, level: &str) -> bool {
        match LEVELS.iter().position(|l| *l == level) {
            Some(index) => {
                self.0.store(index as u8, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn allows(&self, level: usize) -> bool {
        level >= usize::from(self.0.load(Ordering::Relaxed))
    }
}

/// One call's line back to its client.
#[derive(Clone, Default)]
pub struct Talk {
    peer: Option<Peer<RoleServer>>,
    progress: Option<ProgressToken>,
    logs: LogFilter,
    content: Arc<StdMutex<Added>>,
    pace: Arc<StdMutex<Pace>>,
}

/// The content blocks a call added, their size, and why some were refused.
#[derive(Default)]
struct Added {
    blocks: Vec<ContentBlock>,
    bytes: usize,
    overflow: Option<String>,
}

/// A token bucket for a call's notifications.
struct Pace {
    tokens: f64,
    last: std::time::Instant,
    dropped: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { tokens: NOTE_BURST, last: std::time::Instant::now(), dropped: 0 }
    }
}

impl Pace {
    /// Whether one more notification may go now.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * NOTES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(NOTE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        self.dropped += 1;
        if self.dropped == 1 {
            tracing::warn!(
                "a tool sends more than {NOTES_PER_SECOND} log or progress notifications per second; dropping the excess"
            );
        }
        false
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying so.
fn capped(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    format!("{}... [cut by wharf: {} bytes]", &text[..text.floor_char_boundary(max)], text.len())
}

/// The bytes of `content` the host would hold (before base64).
fn content_bytes(content: &Content) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    match content {
        Content::Text(t) => t.len(),
        Content::Image(m) | Content::Audio(m) => m.data.len() + m.mime_type.len(),
        Content::Resource(r) => {
            r.uri.len()
                + opt(&r.mime_type)
                + match &r.body {
                    ResourceBody::Text(t) => t.len(),
                    ResourceBody::Blob(b) => b.len(),
                }
        }
        Content::ResourceLink(l) => l.uri.len() + l.name.len() + opt(&l.description) + opt(&l.mime_type),
    }
}

impl Talk {
    /// A call from `peer`, which asked for progress under `progress` if set.
    pub fn new(peer: Peer<RoleServer>, progress: Option<ProgressToken>, logs: LogFilter) -> Self {
        Talk { peer: Some(peer), progress, logs, content: Arc::default(), pace: Arc::default() }
    }

    /// The content blocks the guest added, in order (empty if it added none).
    pub fn content(&self) -> Vec<ContentBlock> {
        self.added().blocks.clone()
    }

    /// Why blocks the guest added were refused ([`MAX_CONTENT_BYTES`], [`MAX_CONTENT_BLOCKS`]):
    /// the call then fails with this text.
    pub fn overflow(&self) -> Option<String> {
        self.added().overflow.clone()
    }

    fn added(&self) -> std::sync::MutexGuard<'_, Added> {
        self.content.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a log or progress notification may go now ([`NOTES_PER_SECOND`]).
    fn paced(&self) -> bool {
        self.pace.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Puts (a handle to) this talk into `state` for the call about to run.
    pub fn attach(&self, state: &mut HostState) {
        state.set_extension(Some(Box::new(self.clone())));
    }
}

/// Adds `wharf:mcp/context` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    context::add_to_linker::<HostState, HasTalk>(linker, |state| View(state.extension::<Talk>()))
}

struct HasTalk;

impl HasData for HasTalk {
    type Data<'a> = View<'a>;
}

/// The running call's talk; `None` outside a call from an MCP client (`wharf call`).
struct View<'a>(Option<&'a mut Talk>);

impl View<'_> {
    fn peer(&self) -> Result<&Peer<RoleServer>, String> {
        self.0.as_ref().and_then(|t| t.peer.as_ref()).ok_or_else(|| "no MCP client is connected to this call".into())
    }
}

fn block(content: Content) -> Value {
    let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    match content {
        Content::Text(text) => json!({"type": "text", "text": text}),
        Content::Image(m) => json!({"type": "image", "data": b64(&m.data), "mimeType": m.mime_type}),
        Content::Audio(m) => json!({"type": "audio", "data": b64(&m.data), "mimeType": m.mime_type}),
        Content::Resource(r) => {
            let mut resource = json!({"uri": r.uri});
            if let Some(mime) = r.mime_type {
                resource["mimeType"] = mime.into();
            }
            match r.body {
                ResourceBody::Text(text) => resource["text"] = text.into(),
                ResourceBody::Blob(data) => resource["blob"] = b64(&data).into(),
            }
            json!({"type": "resource", "resource": resource})
        }
        Content::ResourceLink(l) => {
            let mut link = json!({"type": "resource_link", "uri": l.uri, "name": l.name});
            if let Some(description) = l.description {
                link["description"] = description.into();
            }
            if let Some(mime) = l.mime_type {
                link["mimeType"] = mime.into();
            }
            link
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The first line of `e`, so a guest gets a one-line reason.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl context::Host for View<'_> {
    async fn add_content(&mut self, content: Content) {
        let Some(talk) = self.0.as_mut() else { return };
        let size = content_bytes(&content);
        {
            let mut added = talk.added();
            if added.overflow.is_some() {
                return;
            }
            if added.blocks.len() >= MAX_CONTENT_BLOCKS || added.bytes.saturating_add(size) > MAX_CONTENT_BYTES {
                let why = format!(
                    "the tool added more content than a result may hold ({MAX_CONTENT_BLOCKS} blocks, \
                     {MAX_CONTENT_BYTES} bytes)"
                );
                tracing::warn!("{why}");
                added.overflow = Some(why);
                added.blocks = Vec::new();
                return;
            }
            added.bytes += size;
        }
        match serde_json::from_value::<ContentBlock>(block(content)) {
            Ok(block) => talk.added().blocks.push(block),
            Err(e) => tracing::warn!("a guest's content block is not valid MCP content: {e}"),
        }
    }

    async fn progress(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        let Some(talk) = self.0.as_ref() else { return };
        let (Some(peer), Some(token)) = (&talk.peer, &talk.progress) else { return };
        if !talk.paced() {
            return;
        }
        let message = message.map(|m| capped(m, MAX_NOTE_BYTES));
        let mut params = json!({"progressToken": token, "progress": progress});
        if let Some(total) = total {
            params["total"] = total.into();
        }
        if let Some(message) = message {
            params["message"] = message.into();
        }
        match serde_json::from_value::<ProgressNotificationParam>(params) {
            Ok(params) => {
                if let Err(e) = peer.notify_progress(params).await {
                    tracing::debug!("cannot send progress: {e}");
                }
            }
            Err(e) => tracing::debug!("a guest's progress is not valid MCP progress: {e}"),
        }
    }

    async fn log(&mut self, level: LogLevel, logger: Option<String>, message: String) {
        let Some(talk) = self.0.as_ref() else { return };
        let Some(peer) = &talk.peer else { return };
        let index = level as usize;
        if !talk.logs.allows(index) || !talk.paced() {
            return;
        }
        let mut params = json!({"level": LEVELS[index], "data": capped(message, MAX_NOTE_BYTES)});
        if let Some(logger) = logger {
            params["logger"] = capped(logger, 256).into();
        }
        if let Ok(params) = serde_json::from_value::<LoggingMessageNotificationParam>(params)
            && let Err(e) = peer.notify_logging_message(params).await
        {
            tracing::debug!("cannot send a log message: {e}");
        }
    }

    async fn sample(&mut self, request: SamplingRequest) -> Result<SamplingResponse, String> {
        let peer = self.peer()?;
        let size = request.messages.iter().map(|m| m.text.len()).sum::<usize>()
            + request.system_prompt.as_ref().map_or(0, String::len);
        if size > MAX_REQUEST_BYTES {
            return Err(format!("the sampling request is {size} bytes of text, over the limit of {MAX_REQUEST_BYTES}"));
        }
        let messages: Vec<Value> = request
            .messages
            .into_iter()
            .map(|m| json!({"role": role_name(m.role), "content": {"type": "text", "text": m.text}}))
            .collect();
        let mut params = json!({"messages": messages, "maxTokens": request.max_tokens});
        if let Some(system) = request.system_prompt {
            params["systemPrompt"] = system.into();
        }
        let params = serde_json::from_value::<CreateMessageRequestParams>(params).map_err(one_line)?;
        let result = peer.create_message(params).await.map_err(|e| format!("sampling failed: {}", one_line(e)))?;
        let result = serde_json::to_value(result).map_err(one_line)?;
        // `content` is one block, or a list of blocks in newer revisions: keep the text.
        let content = &result["content"];
        let blocks = content.as_array().cloned().unwrap_or_else(|| vec![content.clone()]);
        let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n");
        Ok(SamplingResponse {
            role: if result["role"] == "user" { Role::User } else { Role::Assistant },
            text,
            model: result["model"].as_str().unwrap_or_default().to_string(),
            stop_reason: result["stopReason"].as_str().map(str::to_string),
        })
    }

    async fn elicit(&mut self, message: String, requested_schema: String) -> Result<ElicitResponse, String> {
        let peer = self.peer()?;
        let size = message.len() + requested_schema.len();
        if size > MAX_REQUEST_BYTES {
            return Err(format!("the elicitation is {size} bytes, over the limit of {MAX_REQUEST_BYTES}"));
        }
        let schema: Value = serde_json::from_str(&requested_schema)
            .map_err(|e| format!("requested-schema is not JSON: {}", one_line(e)))?;
        let params = json!({"mode": "form", "message": message, "requestedSchema": schema});
        let params = serde_json::from_value::<ElicitRequestParams>(params)
            .map_err(|e| format!("not an elicitation request: {}", one_line(e)))?;
        let result =
            peer.create_elicitation(params).await.map_err(|e| format!("elicitation failed: {}", one_line(e)))?;
        let result = serde_json::to_value(result).map_err(one_line)?;
        let action = match result["action"].as_str() {
            Some("accept") => ElicitAction::Accept,
            Some("decline") => ElicitAction::Decline,
            _ => ElicitAction::Cancel,
        };
        let content = result.get("content").filter(|c| !c.is_null()).map(Value::to_string);
        Ok(ElicitResponse { action, content })
    }
}
