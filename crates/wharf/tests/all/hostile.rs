//! Hostile guests: each attack ends in a specific, clear outcome and the host keeps working.
use std::process::Stdio;
use std::time::Duration;

use test_programs_artifacts::{
    CLI_NET, CLI_RECURSION, CLI_RESOURCES, CLI_SPEW, HTTP_ECHO, HTTP_HELLO, HTTP_RESOURCES, P3_HTTP,
};

use crate::util::{Served, assert_one_clean_error, get, http, run, wharf};

#[test]
pub fn cli_recursion() {
    let out = run(wharf(&["run", CLI_RECURSION])).expect_code(134);
    assert_eq!(out.stdout, "recursing\n");
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: guest trapped: wasm trap: "), "{}", out.stderr);
}

#[test]
pub fn cli_spew() {
    // Gigabytes to stdout and stderr: streamed through, never buffered; the timeout ends it.
    let mut cmd = wharf(&["run", "--timeout", "2s", CLI_SPEW, "100"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    assert_eq!(cmd.status().unwrap().code(), Some(124));
}

#[test]
fn denied_address_spellings() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for target in [format!("127.0.0.1:{port}"), format!("[::1]:{port}"), format!("[::ffff:127.0.0.1]:{port}")] {
        // The listener never answers: if the connect were allowed, the timeout makes it exit 124.
        let args = ["run", "--timeout", "10s", "--allow-net", "*.example.test", CLI_NET, "connect", &target];
        let out = run(wharf(&args)).expect_code(1);
        assert!(out.stdout.starts_with("error: "), "{target}: {}", out.stdout);
    }
}

#[test]
fn endless_response_body_is_cut_at_the_timeout() {
    let server = Served::start(&["--timeout", "2s", HTTP_ECHO]);
    let mut response = http().get(&server.url("/forever")).call().unwrap();
    assert_eq!(response.status(), 200);
    let read = std::io::copy(&mut response.body_mut().with_config().limit(u64::MAX).reader(), &mut std::io::sink());
    assert!(read.is_err(), "an endless body must be cut off, got {read:?}");
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn outbound_host_header_cannot_be_forged() {
    let server = Served::start(&["--allow-net", "http://127.0.0.1:9", HTTP_ECHO]);
    let (status, body) = get(&server.url("/fetch?url=http://127.0.0.1:9/&host=evil.test"));
    assert_eq!((status, body.as_str()), (502, "outbound request failed: cannot set Host: HeaderError::Forbidden"));
}

#[test]
fn request_flood_is_bounded() {
    let server = Served::start(&["--max-concurrency", "4", HTTP_ECHO]);
    let url = server.url("/sleep?ms=100");
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || (0..10).map(|_| get(&url).0).collect::<Vec<u16>>())
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses.len(), 400);
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503) && statuses.contains(&200), "{statuses:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server.url("/")).0, 200);
}

// Resource bombs: host resources created and never dropped (`crates/test-programs/src/resource_bomb.rs`).

/// The peak resident set (`VmHWM`, KiB) of a running process, read until it exits.
fn watch_peak_rss(child: &mut std::process::Child) -> u64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    peak
}

/// `wharf run CLI_RESOURCES ARGS`: exit code, stdout, stderr and wharf's peak RSS in MiB.
fn run_resource_bomb(args: &[&str]) -> (crate::util::Run, u64) {
    let mut cmd = wharf(&["run", CLI_RESOURCES]);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = [
        std::thread::spawn(move || std::io::read_to_string(&mut out).unwrap()),
        std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap()),
    ];
    let peak = watch_peak_rss(&mut child);
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    (crate::util::Run { code, stdout, stderr }, peak / 1024)
}

const RESOURCE_LIMIT: &str =
    "guest exceeded its limit of 4096 live host resources (handles to streams, pollables, HTTP fields and bodies, ...)";

#[test]
pub fn cli_resources() {
    // A million pollables: wasmtime's own caps (1,000,000 table entries, 100,000 guest handles)
    // would let this reach 100,000; wharf stops it at 4,096.
    let (out, peak) = run_resource_bomb(&["pollables", "1000000"]);
    let out = out.expect_code(137);
    assert_one_clean_error(&out, RESOURCE_LIMIT);
    assert!(!out.stdout.contains("created 10000"), "{}", out.stdout);
    eprintln!("pollables: peak RSS {peak} MiB");
    // Fields filled to wasmtime's 128 KiB limit and outgoing bodies written full: measured at
    // 120 KiB and 2 MiB each without wharf's caps, about 12 GB and 66 GB at wasmtime's 100,000
    // handles; here the host stays near 512 MiB.
    for (kind, bytes, ceiling) in [("fields", "130000", 800), ("bodies", "8388608", 400)] {
        let (out, peak) = run_resource_bomb(&[kind, "20000", bytes]);
        let out = out.expect_code(137);
        assert_one_clean_error(&out, RESOURCE_LIMIT);
        eprintln!("{kind}: peak RSS {peak} MiB");
        assert!(peak < ceiling, "{kind}: wharf peaked at {peak} MiB");
    }
}

#[test]
pub fn http_resources() {
    let server = Served::start(&[HTTP_RESOURCES]);
    for path in ["/pollables?count=1000000", "/fields?count=20000&bytes=130000", "/bodies?count=20000&bytes=8388608"] {
        let (status, body) = get(&server.url(path));
        assert_eq!(
            (status, body.as_str()),
            (500, format!("500 Internal Server Error: {RESOURCE_LIMIT}\n").as_str()),
            "{path}"
        );
        assert_eq!(get(&server.url("/")), (200, "Hello from http_resources\n".into()));
    }
    // A guest within the cap is served as usual.
    assert_eq!(get(&server.url("/pollables?count=1000")), (200, "done: 1000 Pollables held\n".into()));
    let rss = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    eprintln!("serve: {}", rss.lines().find(|l| l.starts_with("VmHWM")).unwrap());
}

// Table and instance bombs: guests a Rust program cannot express, written as component text.

/// A `wasi:cli/run` command: `run` is the core function `run` (returning 0 for success) of a
/// module with `module` in it, after `prelude` (component-level items).
fn command_wat(prelude: &str, module: &str) -> String {
    format!(
        r#"(component
            {prelude}
            (core module $m {module})
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $cli)))"#
    )
}

/// A `wasi:http/proxy` component: `handle` is the core function `handle` (two handles in, none
/// out) of a module with `module` in it, after `prelude`.
fn proxy_wat(prelude: &str, module: &str) -> String {
    format!(
        r#"(component
            {prelude}
            (import "wasi:http/types@0.2.0" (instance $types
                (export "incoming-request" (type (sub resource)))
                (export "response-outparam" (type (sub resource)))))
            (alias export $types "incoming-request" (type $request))
            (alias export $types "response-outparam" (type $outparam))
            (core module $m {module})
            (core instance $i (instantiate $m))
            (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
                (canon lift (core func $i "handle")))
            (instance $handler (export "handle" (func $handle)))
            (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#
    )
}

/// Compiles `wat` to a component file `name` in `dir`.
fn write_component(dir: &std::path::Path, name: &str, wat: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

const RUN_OK: &str = r#"(func (export "run") (result i32) (i32.const 0))"#;
const HANDLE_OK: &str = r#"(func (export "handle") (param i32 i32))"#;

/// Grows a table by 100,000,000 elements and traps if that is refused (as an allocator would).
const TABLE_GROW: &str = r#"
    (table $t 1 funcref)
    (func $grow (if (i32.eq (table.grow $t (ref.null func) (i32.const 100000000)) (i32.const -1)) (then unreachable)))
    (func (export "run") (result i32) (call $grow) (i32.const 0))
    (func (export "handle") (param i32 i32) (call $grow))"#;

/// A table declared with a minimum of 100,000,000 elements.
const TABLE_MINIMUM: &str = r#"
    (table 100000000 funcref)
    (func (export "run") (result i32) (i32.const 0))
    (func (export "handle") (param i32 i32))"#;

/// 11 instances of a module with 100 tables (wasm's per-module maximum): 1,100 tables.
fn many_tables() -> String {
    "(core module $tables ".to_string()
        + &"(table 1 funcref) ".repeat(100)
        + ") "
        + &"(core instance (instantiate $tables)) ".repeat(11)
}

#[test]
fn table_bombs() {
    let dir = tempfile::tempdir().unwrap();
    let grow = write_component(dir.path(), "grow.wasm", &command_wat("", TABLE_GROW));
    let out = run(wharf(&["run", &grow])).expect_code(137);
    assert_one_clean_error(&out, "guest exceeded its limit of 1000000 table elements (it asked for 100000001)");

    let minimum = write_component(dir.path(), "minimum.wasm", &command_wat("", TABLE_MINIMUM));
    let out = run(wharf(&["run", &minimum])).expect_code(137);
    assert_one_clean_error(&out, "guest exceeded its limit of 1000000 table elements (it asked for 100000000)");

    let tables = write_component(dir.path(), "tables.wasm", &command_wat(&many_tables(), RUN_OK));
    let out = run(wharf(&["run", &tables])).expect_code(137);
    assert_one_clean_error(&out, "guest exceeded its limit of 1000 tables");
}

/// `wharf serve` of a manifest routing `/bomb` to `bomb` and everything else to the hello
/// component.
fn serve_bomb_beside_hello(dir: &std::path::Path, bomb: &str) -> std::process::Command {
    let manifest = dir.join("wharf.toml");
    let text = format!(
        "[[trigger.http]]\nroute = \"/bomb\"\ncomponent = \"bomb\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
         [component.bomb]\nsource = \"{bomb}\"\n[component.hello]\nsource = \"{HTTP_HELLO}\"\n"
    );
    std::fs::write(&manifest, text).unwrap();
    let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.arg(manifest);
    cmd
}

#[test]
fn table_bombs_in_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let grow = write_component(dir.path(), "grow.wasm", &proxy_wat("", TABLE_GROW));
    let server = Served::spawn(serve_bomb_beside_hello(dir.path(), &grow));
    for _ in 0..3 {
        let (status, body) = get(&server.url("/bomb"));
        let expected =
            "500 Internal Server Error: guest exceeded its limit of 1000000 table elements (it asked for 100000001)\n";
        assert_eq!((status, body.as_str()), (500, expected));
        assert_eq!(get(&server.url("/")), (200, "Hello from a Wharf component!\n".into()));
    }
    // Pooled tables and instances are sized at startup: these are refused before anything binds.
    let minimum = write_component(dir.path(), "minimum.wasm", &proxy_wat("", TABLE_MINIMUM));
    let out = run(serve_bomb_beside_hello(dir.path(), &minimum)).expect_code(2);
    assert_one_clean_error(
        &out,
        "table index 0 has a minimum element size of 100000000 which exceeds the limit of 20000",
    );
    let tables = write_component(dir.path(), "tables.wasm", &proxy_wat(&many_tables(), HANDLE_OK));
    let out = run(serve_bomb_beside_hello(dir.path(), &tables)).expect_code(2);
    assert_one_clean_error(&out, "defined tables count of 100 exceeds the per-instance limit of 1");
}

/// `count` core instances of an empty module, as component-level items.
fn core_instances(count: usize) -> String {
    "(core module $empty) ".to_string() + &"(core instance (instantiate $empty)) ".repeat(count)
}

/// `depth` levels of components, each instantiating the one inside it `fanout` times, around
/// `leaf` (component-level items).
fn nested_instances(depth: usize, fanout: usize, leaf: &str) -> String {
    let mut level = leaf.to_string();
    for _ in 0..depth {
        level = format!("(component $c {level}) ") + &"(instance (instantiate $c)) ".repeat(fanout);
    }
    level
}

const TOO_MANY_INSTANCES: &str =
    "is refused: instantiating it would create more than 1000 core instances (wharf's limit)";

#[test]
fn instance_bombs() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 core instances in one component (wasm's validation allows 1,000).
    let flat = write_component(dir.path(), "flat.wasm", &command_wat(&core_instances(2_000), RUN_OK));
    let out = run(wharf(&["run", &flat])).expect_code(2);
    assert_one_clean_error(&out, TOO_MANY_INSTANCES);
    // 40 instances of a component with 50: valid, 2,000 when instantiated.
    let nested =
        write_component(dir.path(), "nested.wasm", &command_wat(&nested_instances(1, 40, &core_instances(50)), RUN_OK));
    let out = run(wharf(&["run", &nested])).expect_code(2);
    assert_one_clean_error(&out, TOO_MANY_INSTANCES);
    // Seven levels of ten: 10,000,000 core instances from 700 bytes. wasmtime's compiler flattens
    // them all (26 s and 1.8 GB, ten times more per level); wharf refuses it before compiling.
    let exponential =
        write_component(dir.path(), "exp.wasm", &command_wat(&nested_instances(7, 10, &core_instances(1)), RUN_OK));
    assert!(std::fs::metadata(&exponential).unwrap().len() < 1_000);
    let started = std::time::Instant::now();
    let out = run(wharf(&["run", &exponential])).expect_code(2);
    assert_one_clean_error(&out, TOO_MANY_INSTANCES);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn instance_bombs_in_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let exponential =
        write_component(dir.path(), "exp.wasm", &proxy_wat(&nested_instances(7, 10, &core_instances(1)), HANDLE_OK));
    let out = run(serve_bomb_beside_hello(dir.path(), &exponential)).expect_code(2);
    assert_one_clean_error(&out, TOO_MANY_INSTANCES);
}

#[test]
fn guest_output_cannot_forge_the_server_log() {
    // WASI 0.2 and 0.3 alike (0.3 guests wrote straight to wharf's stdout and stderr before).
    for guest in [HTTP_ECHO, P3_HTTP] {
        assert_output_cannot_forge_the_log(guest);
    }
}

fn assert_output_cannot_forge_the_log(guest: &str) {
    // A short idle timeout retires the reused 0.3 instance, whose store then logs the count.
    let server = Served::start(&["--idle-instance-timeout", "100ms", guest]);
    assert_eq!(get(&server.url("/forge-log")), (200, "forged".to_string()));
    assert_eq!(get(&server.url("/")).0, 200, "served after the flood");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("more bytes of output dropped") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "control characters escaped:\n{log:.2000}");
    for line in log.lines().filter(|l| l.contains("GET /admin")) {
        assert!(line.contains("wharf::guest") && line.contains("stream="), "unlabelled guest line: {line}");
        assert!(!line.starts_with("2026-12-01T00:00:00"), "a line of its own: {line}");
    }
    assert!(log.lines().any(|l| l.contains("wharf::guest") && l.contains("second line")), "{log:.2000}");
    assert!(
        log.contains("more bytes of output dropped"),
        "the 1 MiB line is cut:\n{:.2000}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(log.len() < 200 * 1024, "the log grew by {} bytes", log.len());
}
