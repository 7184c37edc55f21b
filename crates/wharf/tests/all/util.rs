//! Runs the real `wharf` binary (ripgrep's `tests/util.rs` style).
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A compile cache shared by the tests that are not about the cache, so each guest compiles once.
fn shared_cache() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// `wharf ARGS` with the shared cache and no logging.
pub fn wharf(args: &[&str]) -> Command {
    wharf_with_cache(shared_cache(), args)
}

/// `wharf ARGS` with its compile cache in `cache`.
pub fn wharf_with_cache(cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args).env("WHARF_CACHE_DIR", cache).env_remove("WHARF_LOG").env_remove("RUST_BACKTRACE");
    cmd
}

/// The binary under test: `CARGO_BIN_EXE_wharf`, unless `WHARF_TEST_BIN` names another build
/// (worktrees sharing one target dir overwrite each other's `target/debug/wharf`).
fn bin() -> std::ffi::OsString {
    std::env::var_os("WHARF_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_wharf").into())
}

/// The result of one run, with stdout and stderr as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `cmd` to completion, feeding it `stdin`.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Run {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    to_run(child.wait_with_output().unwrap())
}

/// Runs `cmd` to completion with empty stdin.
pub fn run(cmd: Command) -> Run {
    run_with_stdin(cmd, b"")
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts the error output is one clear `error:` line, with no panic or backtrace.
#[track_caller]
pub fn assert_one_clean_error(run: &Run, needle: &str) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    assert!(lines[0].contains(needle), "expected {needle:?} in:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("backtrace"), "{}", run.stderr);
}
