//! Guest stdout/stderr written to the host's log instead of a file descriptor: for servers whose
//! own stdout is a protocol stream (`wharf mcp` over stdio), where one guest `println!` would
//! corrupt the transport.
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of one stream logged per store; the rest is counted and dropped, so a guest that
/// writes gigabytes costs the host neither memory nor a flooded log.
const LOG_BUDGET: usize = 64 * 1024;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 4 * 1024;

/// One guest output stream (stdout or stderr) that becomes `wharf::guest` log lines.
#[derive(Clone)]
pub(crate) struct LogStream {
    state: Arc<Mutex<LogState>>,
}

struct LogState {
    label: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
    logged: usize,
    dropped: u64,
}

impl LogStream {
    /// A stream whose lines are logged with `component = label` and `stream = stream`.
    pub(crate) fn new(label: Arc<str>, stream: &'static str) -> Self {
        let state = LogState { label, stream, line: Vec::new(), logged: 0, dropped: 0 };
        LogStream { state: Arc::new(Mutex::new(state)) }
    }
}

impl LogState {
    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.logged >= LOG_BUDGET {
                self.dropped += bytes.len() as u64;
                return;
            }
            let room = MAX_LINE - self.line.len();
            match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    self.emit();
                }
                None if bytes.len() >= room => {
                    self.line.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    self.emit();
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    return;
                }
            }
        }
    }

    fn emit(&mut self) {
        let line = escape(&String::from_utf8_lossy(&self.line));
        tracing::info!(target: "wharf::guest", component = %self.label, stream = self.stream, "{line}");
        self.logged += self.line.len() + 1;
        self.line.clear();
    }
}

/// The line with control characters (carriage returns, terminal escapes) written as `\r`,
/// `\u{1b}`: a guest cannot erase or restyle the log line it is written in, nor start another.
fn escape(line: &str) -> String {
    if !line.chars().any(char::is_control) {
        return line.to_string();
    }
    line.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

impl Drop for LogState {
    fn drop(&mut self) {
        if !self.line.is_empty() && self.logged < LOG_BUDGET {
            self.emit();
        }
        if self.dropped > 0 {
            tracing::warn!(
                target: "wharf::guest",
                component = %self.label,
                stream = self.stream,
                "{} more bytes of output dropped (only the first {LOG_BUDGET} bytes are logged)",
                self.dropped
            );
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape("\r\u{1b}[2KINFO x"), "\\r\\u{1b}[2KINFO x");
        assert_eq!(escape("a\tb\u{7f}"), "a\\tb\\u{7f}");
    }

    #[test]
    fn lines_are_split_and_the_budget_holds() {
        let mut state = LogState { label: "t".into(), stream: "stdout", line: vec![], logged: 0, dropped: 0 };
        state.write(b"one\ntw");
        assert_eq!(state.logged, 4);
        state.write(b"o\n");
        assert_eq!(state.logged, 8);
        state.write(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(state.line.len(), 10, "a long line is logged in pieces");
        state.write(&vec![b'y'; 10 * LOG_BUDGET]);
        assert!(state.logged >= LOG_BUDGET && state.logged < LOG_BUDGET + MAX_LINE + 1);
        assert!(state.dropped > 8 * LOG_BUDGET as u64, "everything past the budget is dropped");
    }
}
