//! Runs the real `wharf` binary (ripgrep's `tests/util.rs` style).
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A compile cache shared by the tests that are not about the cache, so each guest compiles once.
pub fn shared_cache() -> &'static Path {
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
pub fn bin() -> std::ffi::OsString {
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

/// A `wharf serve` process on 127.0.0.1 with an OS-chosen port; killed on drop. Its stderr
/// (access log, warnings) is collected in `log`.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `wharf serve --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Served {
        let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(args);
        Served::spawn(cmd)
    }

    /// Starts `cmd` (a `wharf serve --listen 127.0.0.1:0 ...`) and waits until it listens.
    pub fn spawn(mut cmd: Command) -> Served {
        use std::io::BufRead;
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving HTTP on ") {
                    let _ = tx.send(addr.trim_end_matches('/').to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // Long enough for the first compile of a 20 MB Python component in a debug build.
        match rx.recv_timeout(std::time::Duration::from_secs(600)) {
            Ok(base) => Served { child, base, log },
            Err(_) => {
                let _ = child.kill();
                panic!("wharf serve did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds every one of `needles`, or as it is after 10 s. Lines reach the
    /// log through a reader thread, so a line written before a response may show up after it.
    pub fn log_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns every status as a response, with a generous overall timeout.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// GET `url`: status and body as text.
pub fn get(url: &str) -> (u16, String) {
    let mut response = http().get(url).call().unwrap();
    let body = response.body_mut().with_config().limit(u64::MAX).read_to_string().unwrap();
    (response.status().as_u16(), body)
}
