//! WASI 0.3 (async) components: `run`, `serve` (with instance reuse) and `call`, the sandbox
//! twins of the 0.2 tests (SECURITY.md lists them side by side) and the hostile 0.3 cases,
//! each followed by a normal request that still works.
use std::io::Read;

use test_programs_artifacts::{HTTP_HELLO, MCP_TYPES, P3_CLI, P3_HTTP, P3_MCP};

use crate::util::{Served, assert_one_clean_error, get, http, run, run_with_stdin, wharf};

#[test]
pub fn p3_cli() {
    let out = run(wharf(&["run", P3_CLI])).expect_code(0);
    assert_eq!(out.stdout, "Hello from a WASI 0.3 component!\n");
    // stdin and stdout are 0.3 streams (48 KiB: `run_with_stdin` writes all of stdin before
    // reading stdout, so the echo must fit in the pipe).
    let input: String = (0..48 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let out = run_with_stdin(wharf(&["run", P3_CLI, "echo"]), input.as_bytes()).expect_code(0);
    assert!(out.stdout == input, "echoed stdin differs ({} bytes back)", out.stdout.len());
    // `exit-with-code` keeps its code; a failed `run` is 1, like 0.2.
    run(wharf(&["run", P3_CLI, "exit", "7"])).expect_code(7);
    let out = run(wharf(&["run", P3_CLI, "nonsense"])).expect_code(1);
    assert!(out.stderr.contains("unknown mode"), "{}", out.stderr);
}

#[test]
fn p3_http_component_given_to_run_says_serve() {
    let out = run(wharf(&["run", P3_HTTP])).expect_code(2);
    assert_one_clean_error(
        &out,
        "it is an HTTP component (wasi:http/handler@0.3.x), not a command; serve it with `wharf serve`",
    );
    let out = run(wharf(&["run", HTTP_HELLO])).expect_code(2);
    assert_one_clean_error(&out, "(wasi:http/incoming-handler@0.2.x), not a command");
}

// ---- Sandbox twins of the 0.2 tests in sandbox.rs ----

#[test]
fn p3_env_is_denied_by_default() {
    let mut cmd = wharf(&["run", P3_CLI, "env"]);
    cmd.env("WHARF_TEST_SECRET", "s3cret");
    assert_eq!(run(cmd).expect_code(0).stdout, "", "a 0.3 guest with no grants must see no environment");
    let mut cmd = wharf(&["run", "--env", "GREETING=hi", "-e", "WHARF_TEST_SECRET", P3_CLI, "env"]);
    cmd.env("WHARF_TEST_SECRET", "s3cret").env("WHARF_TEST_OTHER", "x");
    let out = run(cmd).expect_code(0);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["GREETING=hi", "WHARF_TEST_SECRET=s3cret"]);
}

#[test]
fn p3_fs_sees_only_granted_directories() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("inside.txt"), "inside\n").unwrap();
    let dir = root.path().display().to_string();
    let out = run(wharf(&["run", P3_CLI, "read", "inside.txt"])).expect_code(1);
    assert!(out.stderr.contains("no preopened directory"), "{}", out.stderr);
    let granted = format!("{dir}::/data");
    assert_eq!(run(wharf(&["run", "--dir", &granted, P3_CLI, "read", "inside.txt"])).expect_code(0).stdout, "inside\n");
    // No way out of the preopen.
    let out = run(wharf(&["run", "--dir", &granted, P3_CLI, "read", "../etc/passwd"])).expect_code(1);
    assert!(out.stderr.contains("open ../etc/passwd: ErrorCode::NotPermitted"), "{}", out.stderr);
    // Read-only stays read-only.
    let read_only = format!("{dir}::/data:ro");
    let out = run(wharf(&["run", "--dir", &read_only, P3_CLI, "write", "new.txt"])).expect_code(1);
    assert!(out.stderr.contains("ErrorCode::NotPermitted"), "{}", out.stderr);
    assert!(!root.path().join("new.txt").exists());
    assert_eq!(run(wharf(&["run", "--dir", &granted, P3_CLI, "write", "new.txt"])).expect_code(0).stdout, "wrote\n");
    assert!(root.path().join("new.txt").exists());
}

#[test]
fn p3_sockets_follow_allow_net() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = run(wharf(&["run", P3_CLI, "connect", &addr])).expect_code(1);
    assert!(out.stderr.contains("AccessDenied"), "{}", out.stderr);
    let out = run(wharf(&["run", "--allow-net", "127.0.0.2", P3_CLI, "connect", &addr])).expect_code(1);
    assert!(out.stderr.contains("AccessDenied"), "{}", out.stderr);
    assert_eq!(
        run(wharf(&["run", "--allow-net", &addr, P3_CLI, "connect", &addr])).expect_code(0).stdout,
        "connected\n"
    );
}

#[test]
fn p3_memory_limit_ends_async_tasks() {
    // The allocations happen in spawned tasks; the limit still ends the guest with 137.
    let out = run(wharf(&["run", "--max-memory", "64MiB", "--timeout", "60s", P3_CLI, "hog"])).expect_code(137);
    assert!(out.stderr.ends_with("error: guest exceeded its memory limit of 64MiB\n"), "{}", out.stderr);
}

#[test]
fn p3_timeout_ends_async_tasks() {
    // Work spread over four tasks plus `run` itself, a future never written, a stream never
    // closed: the timeout ends each with 124.
    for mode in ["spin", "pending", "unclosed"] {
        let out = run(wharf(&["run", "--timeout", "1s", P3_CLI, mode])).expect_code(124);
        assert_one_clean_error(&out, "guest timed out after 1s");
    }
    // Thousands of subtasks are fine within limits.
    let out = run(wharf(&["run", "--timeout", "30s", P3_CLI, "swarm", "5000"])).expect_code(0);
    assert_eq!(out.stdout, "5000 subtasks finished\n");
}

// ---- serve ----

#[test]
pub fn p3_http() {
    let server = Served::start(&["--timeout", "10s", P3_HTTP]);
    assert_eq!(get(&server.url("/")), (200, "Hello from a WASI 0.3 component!\n".into()));
    // A 3 MiB body streams through the guest both ways (it holds one 64 KiB chunk at a time).
    let body: Vec<u8> = (0..3 << 20).map(|i| (i * 7 % 256) as u8).collect();
    let mut response = http().post(&server.url("/echo")).send(&body[..]).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-echo").unwrap(), "p3");
    let mut echoed = Vec::new();
    response.body_mut().with_config().limit(u64::MAX).reader().read_to_end(&mut echoed).unwrap();
    assert!(echoed == body, "echoed body differs ({} bytes back)", echoed.len());
}

#[test]
fn p3_trailers_reach_the_client() {
    let server = Served::start(&[P3_HTTP]);
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    use std::io::Write;
    stream.write_all(b"GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("with trailers\n") && raw.contains("\r\n0\r\nx-checksum: abc123\r\n"), "{raw}");
}

#[test]
fn p3_instances_are_reused_and_retired() {
    let count = |server: &Served| get(&server.url("/count")).1;
    // Default for 0.3: one instance serves the next requests (its state survives).
    let server = Served::start(&[P3_HTTP]);
    let seen: Vec<String> = (0..3).map(|_| count(&server)).collect();
    assert_eq!(seen, ["count 1\n", "count 2\n", "count 3\n"]);
    // A trap retires the instance: the next request gets a fresh one.
    assert_eq!(get(&server.url("/trap")).0, 500);
    assert_eq!(count(&server), "count 1\n");
    // Reuse off: a fresh instance per request, like 0.2.
    let fresh = Served::start(&["--max-instance-reuse-count", "1", P3_HTTP]);
    assert_eq!((count(&fresh), count(&fresh)), ("count 1\n".into(), "count 1\n".into()));
    // Max reuse 2: the third request is on a new instance.
    let two = Served::start(&["--max-instance-reuse-count", "2", P3_HTTP]);
    let seen: Vec<String> = (0..3).map(|_| count(&two)).collect();
    assert_eq!(seen, ["count 1\n", "count 2\n", "count 1\n"]);
    // An idle instance is dropped after the idle timeout.
    let idle = Served::start(&["--idle-instance-timeout", "200ms", P3_HTTP]);
    assert_eq!(count(&idle), "count 1\n");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(count(&idle), "count 1\n");
}

#[test]
fn p3_outbound_http_follows_the_allowlist() {
    let port = crate::serve::upstream_server();
    let fetch = |server: &Served, target: &str| get(&server.url(&format!("/fetch?http://{target}/x")));
    let allowed = Served::start(&["--allow-net", &format!("http://127.0.0.1:{port}"), P3_HTTP]);
    assert_eq!(fetch(&allowed, &format!("127.0.0.1:{port}")), (200, "upstream 200: upstream".into()));
    let (status, body) = fetch(&allowed, &format!("localhost:{port}"));
    assert_eq!((status, body.as_str()), (502, "fetch failed: ErrorCode::HttpRequestDenied\n"));
    let denied = Served::start(&["--allow-net", "*.example.test", P3_HTTP]);
    let (status, body) = fetch(&denied, &format!("127.0.0.1:{port}"));
    assert_eq!((status, body.as_str()), (502, "fetch failed: ErrorCode::HttpRequestDenied\n"));
    let log = denied.log_with(&["outbound HTTP request denied by policy"]);
    assert!(log.contains("outbound HTTP request denied by policy"), "{log}");
}

#[test]
fn p3_env_in_serve_is_the_granted_one() {
    let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--env", "MODE=p3", P3_HTTP]);
    cmd.env("WHARF_TEST_SECRET", "s3cret");
    let server = Served::spawn(cmd);
    assert_eq!(get(&server.url("/env")), (200, "MODE=p3\n".into()));
}

/// Reads a body to its end: `Ok(bytes)` if it ended cleanly, `Err` if it was cut off.
fn read_body(url: &str) -> (u16, std::io::Result<u64>) {
    let mut response = http().get(url).call().unwrap();
    let status = response.status().as_u16();
    let read = std::io::copy(&mut response.body_mut().with_config().limit(u64::MAX).reader(), &mut std::io::sink());
    (status, read)
}

#[test]
fn p3_hostile_requests_fail_alone() {
    let server = Served::start(&["--timeout", "2s", "--max-memory", "64MiB", P3_HTTP]);
    let ok = |after: &str| assert_eq!(get(&server.url("/")).0, 200, "a normal request after {after}");
    let expect = |path: &str, status: u16, needle: &str| {
        let (got, body) = get(&server.url(path));
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
        ok(path);
    };
    // A handler that never answers, one that computes forever, one that grows memory.
    expect("/pending", 504, "guest timed out after 2s");
    expect("/spin", 504, "guest timed out after 2s");
    expect("/hog", 500, "guest exceeded its memory limit of 64MiB");
    expect("/trap", 500, "guest trapped");
    // A task left behind after the response does not hold up anything.
    expect("/spawn-pending", 200, "answered, a task left behind");
    // Bodies that never end, or never close, are cut at the timeout: never look complete.
    for path in ["/forever", "/unclosed"] {
        let (status, read) = read_body(&server.url(path));
        assert_eq!(status, 200, "{path}");
        assert!(read.is_err(), "{path}: a body cut off must not look complete, got {read:?}");
        ok(path);
    }
    // A body dropped mid-transfer with an error: the client sees an error, not a short body.
    let dropped = http().get(&server.url("/drop")).call();
    let cut = match dropped {
        Err(_) => true,
        Ok(mut response) => response.body_mut().with_config().limit(u64::MAX).read_to_vec().is_err(),
    };
    assert!(cut, "/drop must not look like a complete body");
    ok("/drop");
    assert!(!server.log().contains("panicked at crates/"), "{}", server.log());
}

#[test]
fn p3_concurrent_requests_share_an_instance() {
    // 16 slow requests at once on one 0.3 instance (max concurrent reuse 16): all answered.
    let server = Served::start(&["--timeout", "30s", P3_HTTP]);
    // Thousands of subtasks in one request: within limits, they just run.
    assert_eq!(get(&server.url("/swarm?5000")), (200, "5000 subtasks finished\n".into()));
    let url = server.url("/swarm?50");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), (200, "50 subtasks finished\n".into()));
    }
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn p2_with_reuse_asked_for_runs_on_the_concurrent_engine() {
    // A plain 0.2 component gets the engine without concurrency support, but reusing its
    // instances runs it on wasmtime-wasi-http's event loop: that needs the concurrent engine.
    // Mixed in one manifest with a fresh-per-request copy of itself on the other engine.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("wharf.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[trigger.http]]\nroute = \"/reused/...\"\ncomponent = \"reused\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"fresh\"\n\
             [component.reused]\nsource = \"{HTTP_HELLO}\"\nmax_instance_reuse_count = 4\n\
             [component.fresh]\nsource = \"{HTTP_HELLO}\"\n"
        ),
    )
    .unwrap();
    let server = Served::start(&[manifest.to_str().unwrap()]);
    for path in ["/reused/x", "/x", "/reused/y", "/reused/z", "/y", "/reused/w", "/reused/v"] {
        assert_eq!(get(&server.url(path)), (200, "Hello from a Wharf component!\n".into()), "{path}");
    }
    let flags = Served::start(&["--max-instance-reuse-count", "3", HTTP_HELLO]);
    for _ in 0..4 {
        assert_eq!(get(&flags.url("/")), (200, "Hello from a Wharf component!\n".into()));
    }
}

#[test]
fn p3_and_p2_components_in_one_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("wharf.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[trigger.http]]\nroute = \"/v2/...\"\ncomponent = \"old\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"new\"\n\
             [component.old]\nsource = \"{HTTP_HELLO}\"\n\
             [component.new]\nsource = \"{P3_HTTP}\"\nmax_instance_reuse_count = 2\nenv = [\"MODE=p3\"]\n"
        ),
    )
    .unwrap();
    let server = Served::start(&[manifest.to_str().unwrap()]);
    assert_eq!(get(&server.url("/v2/x")), (200, "Hello from a Wharf component!\n".into()));
    assert_eq!(get(&server.url("/")), (200, "Hello from a WASI 0.3 component!\n".into()));
    assert_eq!(get(&server.url("/env")), (200, "MODE=p3\n".into()));
    let seen: Vec<String> = (0..3).map(|_| get(&server.url("/count")).1).collect();
    assert_eq!(seen, ["count 1\n", "count 2\n", "count 1\n"], "max_instance_reuse_count = 2 from the manifest");

    std::fs::write(
        &manifest,
        format!("[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"{P3_HTTP}\"\nmax_instance_reuse_count = 0\n"),
    )
    .unwrap();
    let out = run(wharf(&["serve", "--listen", "127.0.0.1:0", manifest.to_str().unwrap()])).expect_code(2);
    assert_one_clean_error(&out, "component.a.max_instance_reuse_count: must be an integer from 1 to 1000000, got 0");
}

// ---- call / mcp ----

#[test]
pub fn p3_mcp() {
    let call = |extra: &[&str], tool: &str, args: &str| {
        let mut all = vec!["call"];
        all.extend(extra);
        all.extend([P3_MCP, tool, "--args", args]);
        run(wharf(&all))
    };
    assert_eq!(call(&[], "async-tools.slow-add", r#"{"a": 2, "b": 3}"#).expect_code(0).stdout, "5\n");
    assert_eq!(call(&[], "async-tools.greet", r#"{"name": "p3"}"#).expect_code(0).stdout, "{\"ok\":\"Hello, p3!\"}\n");
    assert_eq!(
        call(&[], "async-tools.greet", r#"{"name": ""}"#).expect_code(1).stdout,
        "{\"err\":\"name is empty\"}\n"
    );
    let stall = call(&["--timeout", "1s"], "async-tools.stall", "{}").expect_code(124);
    assert!(stall.stderr.contains("timed out after 1s"), "{}", stall.stderr);
}

#[test]
fn p3_and_p2_tools_in_one_mcp_server() {
    // The async tool runs on the concurrent engine, the plain 0.2 one on the other: one
    // toolbox, each call's store made on its component's engine.
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"p3_mcp.async-tools.slow-add","arguments":{"a":2,"b":3}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"mcp_types.add","arguments":{"a":4,"b":5}}}"#,
    ];
    let out = run_with_stdin(wharf(&["mcp", P3_MCP, MCP_TYPES]), format!("{}\n", lines.join("\n")).as_bytes());
    let answer = |id: u64| -> serde_json::Value {
        out.stdout
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|reply| reply["id"] == id)
            .unwrap_or_else(|| panic!("no reply {id}: {}\n{}", out.stdout, out.stderr))
    };
    assert_eq!(answer(2)["result"]["structuredContent"]["result"], 5, "{}", out.stdout);
    assert_eq!(answer(3)["result"]["structuredContent"]["result"], 9, "{}", out.stdout);
}

// ---- OCI ----

/// A 0.3 component pushed to a real registry: its config describes the 0.3 world (`os` stays
/// `wasip2`, as oci-wasm and wkg write it for every component), and `run REF`/`serve REF`
/// accept its `@0.3.x` imports.
#[test]
fn p3_components_round_trip_through_a_registry() {
    let registry = crate::registry::TestRegistry::anonymous();
    let data = tempfile::tempdir().unwrap();
    let wharf_in = |args: &[&str]| {
        let mut cmd = wharf(args);
        cmd.env("WHARF_DATA_DIR", data.path()).env("DOCKER_CONFIG", data.path()).env("SOURCE_DATE_EPOCH", "1700000000");
        cmd
    };
    let host = registry.host.as_str();
    let (cli, service) = (registry.reference("p3-cli:v1"), registry.reference("p3-http:v1"));
    run(wharf_in(&["push", "--insecure", host, P3_CLI, &cli])).expect_code(0);
    run(wharf_in(&["push", "--insecure", host, P3_HTTP, &service])).expect_code(0);

    let inspect = run(wharf_in(&["inspect", "--json", "--insecure", host, &service])).expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let list = |key: &str| -> Vec<String> {
        json["component"][key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    assert!(list("exports").contains(&"wasi:http/handler@0.3.0".to_string()), "{}", inspect.stdout);
    assert!(list("imports").contains(&"wasi:http/types@0.3.0".to_string()), "{}", inspect.stdout);
    assert_eq!(json["os"], "wasip2", "{}", inspect.stdout);

    let out = run(wharf_in(&["run", "--insecure", host, &cli])).expect_code(0);
    assert_eq!(out.stdout, "Hello from a WASI 0.3 component!\n");
    let server = Served::spawn(wharf_in(&["serve", "--listen", "127.0.0.1:0", "--insecure", host, &service]));
    assert_eq!(get(&server.url("/")), (200, "Hello from a WASI 0.3 component!\n".into()));
}

#[test]
fn p3_inspect_names_the_generation() {
    let out = run(wharf(&["inspect", P3_HTTP])).expect_code(0);
    assert!(out.stdout.contains("WASI         0.3 (async"), "{}", out.stdout);
    assert!(out.stdout.contains("  wasi:http/handler@0.3.0\n"), "{}", out.stdout);
    let out = run(wharf(&["inspect", HTTP_HELLO])).expect_code(0);
    assert!(out.stdout.contains("WASI         0.2\n"), "{}", out.stdout);
}
