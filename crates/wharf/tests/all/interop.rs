//! Interop: components built by toolchains nobody here wrote, from the sources in
//! `crates/wharf/tests/interop`, run and served by the real binary.
//!
//! - componentize-py 0.25.1 (PyPI, in `<repo>/.venv`): a WASI 0.3 command and HTTP service
//!   (`wasi:cli/command@0.3.0`, `wasi:http/service@0.3.0`) after its `cli-p3` and `http-p3`
//!   examples, and their 0.2 builds (`@0.2.12`) after its `cli` and `http` examples.
//! - componentize-qjs 0.4.5 (npm, in `tests/interop/qjs/node_modules`): a command built with the
//!   tool's default runtime, which lifts `run` with the component-model async ABI even though
//!   its world is 0.2.
//!
//! `scripts/setup.sh` installs both. A Python component is ~20 MB and its first compile takes
//! minutes in a debug build, so each fixture is built once per test run (a `OnceLock`) and
//! compiled once into the shared compile cache by its first run; the tests that share a
//! fixture wait for that instead of compiling it again. The first runs of the two commands
//! double as the tests of the "compiling X, cached afterwards" notice, through a
//! pseudo-terminal (`script`).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::Digest;

use crate::util::{Served, bin, get, http, run, shared_cache, wharf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sources() -> PathBuf {
    repo().join("crates/wharf/tests/interop")
}

/// Where this test run's fixtures are built: under the target dir (a `static` temp dir would
/// never be removed), emptied by the first test that needs it.
fn out_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A tool installed by scripts/setup.sh, or a panic that says so.
fn tool(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: run `bash scripts/setup.sh` first", path.display());
    path
}

/// `componentize-py -d WIT -w WORLD componentize app` on a copy of `py/APP` (the build leaves
/// `__pycache__` behind, which must not land in the repository).
fn componentize_py(app: &str, wit: &str, world: &str) -> String {
    let componentize_py = tool(repo().join(".venv/bin/componentize-py"));
    let work = out_dir().join(format!("py-{app}"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(sources().join("py").join(app).join("app.py"), work.join("app.py")).unwrap();
    let output = work.join(format!("{app}.wasm"));
    let wit = sources().join("wit").join(wit);
    let status = Command::new(componentize_py)
        .current_dir(&work)
        .args(["-q", "-d"])
        .arg(&wit)
        .args(["-w", world, "componentize", "app", "-o"])
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success() && output.exists(), "componentize-py failed to build {app}");
    output.display().to_string()
}

/// Runs `command` (a shell command line) in a pseudo-terminal, as a person at a terminal
/// would: `script` gives it a terminal for stdin, stdout and stderr. Returns what the terminal
/// showed, with `\r\n` as `\n`.
fn on_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("WHARF_CACHE_DIR", shared_cache())
        .env_remove("WHARF_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) is needed for the terminal tests");
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(out.status.success(), "{command} failed ({}):\n{shown}", out.status);
    shown
}

fn quoted(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A built command, and what its first `wharf run` (the one that compiled it) showed.
struct FirstRun {
    wasm: String,
    shown: String,
    stderr: Option<String>,
}

/// The componentize-qjs command; its first run is on a terminal, stderr included.
fn qjs_hello() -> &'static FirstRun {
    static FIXTURE: OnceLock<FirstRun> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let componentize_qjs = tool(sources().join("qjs/node_modules/.bin/componentize-qjs"));
        let wasm = out_dir().join("qjs-hello.wasm");
        let out = Command::new(componentize_qjs)
            .arg("--wit")
            .arg(sources().join("wit/p2"))
            .args(["-n", "qjs-hello", "--js"])
            .arg(sources().join("qjs/hello.js"))
            .arg("-o")
            .arg(&wasm)
            .output()
            .unwrap();
        assert!(out.status.success(), "componentize-qjs failed: {}", String::from_utf8_lossy(&out.stderr));
        let wasm = wasm.display().to_string();
        let shown = on_terminal(&format!("{} run {} first", quoted(&bin().to_string_lossy()), quoted(&wasm)));
        FirstRun { wasm, shown, stderr: None }
    })
}

/// The componentize-py 0.2 command; its first run has stdout on a terminal and stderr in a file.
fn py_cli_p2() -> &'static FirstRun {
    static FIXTURE: OnceLock<FirstRun> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let wasm = componentize_py("cli", "p2", "wasi:cli/command@0.2.12");
        let stderr = out_dir().join("py-cli-first-run.stderr");
        let shown = on_terminal(&format!(
            "{} run {} first 2> {}",
            quoted(&bin().to_string_lossy()),
            quoted(&wasm),
            quoted(&stderr.display().to_string())
        ));
        let stderr = std::fs::read_to_string(stderr).unwrap();
        FirstRun { wasm, shown, stderr: Some(stderr) }
    })
}

#[test]
fn interop_py_cli_p3() {
    let wasm = componentize_py("cli-p3", "p3", "wasi:cli/command@0.3.0");
    let out = run(wharf(&["inspect", &wasm])).expect_code(0);
    assert!(out.stdout.contains("WASI         0.3 (async"), "{}", out.stdout);
    let out = run(wharf(&["run", "--env", "GREETING=hi", &wasm, "a", "b c"])).expect_code(0);
    assert_eq!(out.stdout, "Hello from Python on WASI 0.3!\nargs: ['a', 'b c']\nGREETING: hi\n");
    // Nothing granted, nothing seen, whichever toolchain built the component.
    let mut cmd = wharf(&["run", &wasm]);
    cmd.env("GREETING", "from the host");
    assert_eq!(run(cmd).expect_code(0).stdout, "Hello from Python on WASI 0.3!\nargs: []\nGREETING: None\n");
}

#[test]
fn interop_py_cli_p2() {
    let first = py_cli_p2();
    assert_eq!(first.shown, "Hello from Python on WASI 0.2!\nargs: ['first']\nGREETING: None\n");
    let out = run(wharf(&["run", "--env", "GREETING=hi", &first.wasm, "a"])).expect_code(0);
    assert_eq!(out.stdout, "Hello from Python on WASI 0.2!\nargs: ['a']\nGREETING: hi\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn interop_qjs_async_command() {
    let first = qjs_hello();
    assert!(needs_async_abi(&first.wasm), "componentize-qjs's default runtime no longer uses the async ABI");
    assert!(first.shown.ends_with("Hello from QuickJS! args: [\"first\"]\n"), "{}", first.shown);
    let out = run(wharf(&["run", &first.wasm, "x", "y"])).expect_code(0);
    assert_eq!(out.stdout, "Hello from QuickJS! args: [\"x\",\"y\"]\n");
}

/// Whether the component needs the component-model async feature: valid with it, refused
/// without it (as a host without async support refuses it: "`task.cancel` requires the
/// component model async feature").
fn needs_async_abi(wasm: &str) -> bool {
    use wasmparser::{Validator, WasmFeatures};
    let bytes = std::fs::read(wasm).unwrap();
    Validator::new_with_features(WasmFeatures::all()).validate_all(&bytes).expect("a valid component");
    Validator::new_with_features(WasmFeatures::all() - WasmFeatures::CM_ASYNC).validate_all(&bytes).is_err()
}

#[test]
fn compile_notice_only_on_a_terminal_and_only_when_compiling() {
    // A first compile on a terminal says so, before anything the guest writes.
    let qjs = qjs_hello();
    let notice = format!("compiling {}, cached afterwards\n", qjs.wasm);
    assert!(qjs.shown.starts_with(&notice), "expected {notice:?} first, got:\n{}", qjs.shown);
    // A cache hit says nothing, even on a terminal.
    let again = on_terminal(&format!("{} run {} again", quoted(&bin().to_string_lossy()), quoted(&qjs.wasm)));
    assert_eq!(again, "Hello from QuickJS! args: [\"again\"]\n");
    // A first compile whose stderr is not a terminal says nothing there (stdout is one).
    let py = py_cli_p2();
    assert_eq!(py.stderr.as_deref(), Some(""), "stderr is a file here");
    assert!(!py.shown.contains("compiling"), "{}", py.shown);
}

/// Compiles `wasm` into the shared cache with `wharf compile` (no time limit), so that the
/// server started next loads it from there instead of compiling within its start-up wait.
fn precompiled(wasm: String) -> String {
    run(wharf(&["compile", &wasm])).expect_code(0);
    wasm
}

#[test]
fn interop_py_http_p3() {
    let wasm = precompiled(componentize_py("http-p3", "p3", "wasi:http/service@0.3.0"));
    let port = crate::serve::upstream_server();
    let server = Served::start(&["--allow-net", &format!("http://127.0.0.1:{port}"), &wasm]);
    assert_eq!(get(&server.url("/")), (200, "Hello from Python on WASI 0.3!\n".into()));
    assert_eq!(get(&server.url("/nowhere")), (404, "no route for /nowhere\n".into()));

    // The body stream is handed straight to the response: 1 MiB comes back unchanged.
    let body: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut response =
        http().post(&server.url("/echo")).header("content-type", "application/x-test").send(&body[..]).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "application/x-test");
    let echoed = response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    assert!(echoed == body, "echoed body differs ({} bytes back)", echoed.len());

    // Outbound wasi:http/client from Python, through the same policy as every guest: the
    // allowed upstream is fetched and hashed, the other name for the same server is refused.
    let allowed = format!("http://127.0.0.1:{port}/x");
    let refused = format!("http://localhost:{port}/x");
    let mut response =
        http().get(&server.url("/hash-all")).header("url", &allowed).header("url", &refused).call().unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    let digest = hex::encode(sha2::Sha256::digest(b"upstream"));
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], format!("{allowed}: {digest}"), "{text}");
    assert!(lines[1].starts_with(&format!("{refused}: failed:")) && lines[1].contains("HttpRequestDenied"), "{text}");
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn interop_py_http_p2() {
    let wasm = precompiled(componentize_py("http", "p2", "wasi:http/proxy@0.2.12"));
    let server = Served::start(&[&wasm]);
    assert_eq!(get(&server.url("/")), (200, "Hello from Python on WASI 0.2!\n".into()));
    let body: Vec<u8> = (0..256 << 10).map(|i| (i * 7 % 251) as u8).collect();
    let mut response =
        http().post(&server.url("/echo")).header("content-type", "application/x-test").send(&body[..]).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "application/x-test");
    let echoed = response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    assert!(echoed == body, "echoed body differs ({} bytes back)", echoed.len());
    assert_eq!(get(&server.url("/nowhere")), (404, "no route for /nowhere\n".into()));
}
