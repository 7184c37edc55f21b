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
/// Lines of stderr remembered for a failure message (a Rust panic is two: where and what).
const TAIL_LINES: usize = 3;
/// Bytes of one remembered line.
const TAIL_LINE: usize = 240;

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
    tail: Tail,
}

/// The last few lines written, kept whatever the log budget, so a trap's message can say
/// what the guest printed last (a panic's text) even after megabytes of output.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    current: Vec<u8>,
}

impl Tail {
    fn write(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (text, ended) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = TAIL_LINE.saturating_sub(self.current.len());
            self.current.extend_from_slice(&text[..text.len().min(room)]);
            if ended {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.current).trim().to_string();
        self.current.clear();
        // Rust's hint about backtraces says nothing about this failure.
        if line.is_empty() || line.starts_with("note: run with `RUST_BACKTRACE") {
            return;
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn text(&self) -> Option<String> {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        let current = String::from_utf8_lossy(&self.current).trim().to_string();
        if !current.is_empty() {
            lines.push(current);
        }
        let start = lines.len().saturating_sub(TAIL_LINES);
        let text = lines[start..].join(" ");
        (!text.is_empty()).then_some(text)
    }
}

impl LogStream {
    /// A stream whose lines are logged with `component = label` and `stream = stream`.
    pub(crate) fn new(label: Arc<str>, stream: &'static str) -> Self {
        let state = LogState { label, stream, line: Vec::new(), logged: 0, dropped: 0, tail: Tail::default() };
        LogStream { state: Arc::new(Mutex::new(state)) }
    }

    /// The last lines written (up to three, one line joined by spaces), if any.
    pub(crate) fn tail(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).tail.text()
    }
}

impl LogState {
    fn write(&mut self, mut bytes: &[u8]) {
        self.tail.write(bytes);
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
        let mut state = LogState {
            label: "t".into(),
            stream: "stdout",
            line: vec![],
            logged: 0,
            dropped: 0,
            tail: Tail::default(),
        };
        state.write(b"one\ntw");
        assert_eq!(state.logged, 4);
        state.write(b"o\n");
        assert_eq!(state.logged, 8);
        state.write(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(state.line.len(), 10, "a long line is logged in pieces");
        state.write(&vec![b'y'; 10 * LOG_BUDGET]);
        assert!(state.logged >= LOG_BUDGET && state.logged < LOG_BUDGET + MAX_LINE + 1);
        assert!(state.dropped > 8 * LOG_BUDGET as u64, "everything past the budget is dropped");
        state.write(b"\nthread '<unnamed>' panicked at src/main.rs:3:5:\nboom\n");
        state.write(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        let tail = state.tail.text().unwrap();
        assert!(tail.ends_with("thread '<unnamed>' panicked at src/main.rs:3:5: boom"), "{tail}");
        assert!(tail.len() < 3 * TAIL_LINE + 3, "the tail is bounded");
    }
}
