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
    content: Arc<StdMutex<Vec<ContentBlock>>>,
}

impl Talk {
    /// A call from `peer`, which asked for progress under `progress` if set.
    pub fn new(peer: Peer<RoleServer>, progress: Option<ProgressToken>, logs: LogFilter) -> Self {
        Talk { peer: Some(peer), progress, logs, content: Arc::default() }
    }

    /// The content blocks the guest added, in order (empty if it added none).
    pub fn content(&self) -> Vec<ContentBlock> {
        self.content.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        match serde_json::from_value::<ContentBlock>(block(content)) {
            Ok(block) => talk.content.lock().unwrap_or_else(|e| e.into_inner()).push(block),
            Err(e) => tracing::warn!("a guest's content block is not valid MCP content: {e}"),
        }
    }

    async fn progress(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        let Some(talk) = self.0.as_ref() else { return };
        let (Some(peer), Some(token)) = (&talk.peer, &talk.progress) else { return };
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
        if !talk.logs.allows(index) {
            return;
        }
        let mut params = json!({"level": LEVELS[index], "data": message});
        if let Some(logger) = logger {
            params["logger"] = logger.into();
        }
        if let Ok(params) = serde_json::from_value::<LoggingMessageNotificationParam>(params)
            && let Err(e) = peer.notify_logging_message(params).await
        {
            tracing::debug!("cannot send a log message: {e}");
        }
    }

    async fn sample(&mut self, request: SamplingRequest) -> Result<SamplingResponse, String> {
        let peer = self.peer()?;
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
