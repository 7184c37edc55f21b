//! What may come in over `wharf mcp --http`, before rmcp sees a request: an optional bearer
//! token, and a bounded number of sessions.
//!
//! Sessions: at most [`HttpLimits::max_sessions`]. A session that has made no request beyond
//! `initialize` and `notifications/initialized` is closed after
//! [`HttpLimits::unused_session_timeout`]; any session after [`HttpLimits::session_idle_timeout`]
//! without a request. At the cap, a new session closes the oldest unused one, else gets 503.
//! rmcp's session manager keeps a closed-by-timeout session's entry forever, so closing goes
//! through [`LocalSessionManager::close_session`] here, which also frees it.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

/// The HTTP transport's limits and access control.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Listener limits: connection cap, header and idle timeout.
    pub listener: wharf_http::ListenerOptions,
    /// Live sessions at most.
    pub max_sessions: usize,
    /// How long a session that never made a request after initializing lives.
    pub unused_session_timeout: Duration,
    /// How long any session lives without a request.
    pub session_idle_timeout: Duration,
    /// A token every request must carry as `Authorization: Bearer TOKEN`, if set.
    pub bearer_token: Option<String>,
    /// How long an instance held for a stateless client lives without a call.
    pub held_idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            listener: wharf_http::ListenerOptions::default(),
            max_sessions: 256,
            unused_session_timeout: Duration::from_secs(30),
            session_idle_timeout: Duration::from_secs(300),
            bearer_token: None,
            held_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Whether `authorization` (the header's value) carries `token`, compared in constant time.
pub fn bearer_matches(token: &str, authorization: Option<&[u8]>) -> bool {
    let Some(value) = authorization else { return false };
    let Some(given) = value.strip_prefix(b"Bearer ").or_else(|| value.strip_prefix(b"bearer ")) else { return false };
    let expected = token.as_bytes();
    // Length is not secret (the token's own length is the operator's choice); contents are.
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

struct Tracked {
    created: Instant,
    last: Instant,
    requests: u32,
}

impl Tracked {
    /// `initialize` and `notifications/initialized` do not count as use.
    fn unused(&self) -> bool {
        self.requests <= 1
    }
}

/// Live sessions by id, with what is needed to expire them.
pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    limits: HttpLimits,
    live: Mutex<HashMap<String, Tracked>>,
}

impl Sessions {
    /// Tracks the sessions of `manager`.
    pub fn new(manager: Arc<LocalSessionManager>, limits: HttpLimits) -> Arc<Sessions> {
        Arc::new(Sessions { manager, limits, live: Mutex::new(HashMap::new()) })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request in session `id`.
    pub fn touch(&self, id: &str) {
        if let Some(tracked) = self.live().get_mut(id) {
            tracked.requests += 1;
            tracked.last = Instant::now();
        }
    }

    /// Records a session rmcp just created.
    pub fn created(&self, id: &str) {
        let now = Instant::now();
        self.live().insert(id.to_string(), Tracked { created: now, last: now, requests: 0 });
    }

    /// Forgets a session the client deleted.
    pub fn deleted(&self, id: &str) {
        self.live().remove(id);
    }

    /// Whether a new session may start: expires old ones, then at the cap closes the oldest
    /// unused one. False when every session is in use.
    pub async fn admit(&self) -> bool {
        self.expire().await;
        let victim = {
            let mut live = self.live();
            if live.len() < self.limits.max_sessions {
                return true;
            }
            let oldest =
                live.iter().filter(|(_, t)| t.unused()).min_by_key(|(_, t)| t.created).map(|(id, _)| id.clone());
            oldest.inspect(|id| {
                live.remove(id);
            })
        };
        match victim {
            Some(id) => {
                tracing::info!(session = %id, "closing an unused session to make room for a new one");
                self.close(&id).await;
                true
            }
            None => false,
        }
    }

    /// Closes sessions past their unused or idle timeout.
    pub async fn expire(&self) {
        let expired: Vec<String> = {
            let mut live = self.live();
            let limits = &self.limits;
            let old = |t: &Tracked| {
                (t.unused() && t.created.elapsed() > limits.unused_session_timeout)
                    || t.last.elapsed() > limits.session_idle_timeout
            };
            let ids: Vec<String> = live.iter().filter(|(_, t)| old(t)).map(|(id, _)| id.clone()).collect();
            for id in &ids {
                live.remove(id);
            }
            ids
        };
        for id in expired {
            tracing::debug!(session = %id, "session expired");
            self.close(&id).await;
        }
    }

    async fn close(&self, id: &str) {
        if let Err(e) = self.manager.close_session(&Arc::from(id)).await {
            tracing::debug!(session = %id, "closing the session: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_match_exactly() {
        assert!(bearer_matches("s3cret", Some(b"Bearer s3cret")));
        for wrong in [&b"Bearer s3cre"[..], b"Bearer s3cret ", b"Basic s3cret", b"s3cret", b"Bearer S3cret", b""] {
            assert!(!bearer_matches("s3cret", Some(wrong)), "{}", String::from_utf8_lossy(wrong));
        }
        assert!(!bearer_matches("s3cret", None));
    }
}
