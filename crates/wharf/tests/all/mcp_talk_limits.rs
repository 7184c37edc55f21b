//! Hostile MCP components. A tool that talks back too much through `wharf:mcp/context` (the `mcp_hostile` guest),
//! driven over stdio with plain JSON-RPC lines: content blocks, log and progress messages are
//! copied out of the guest's memory and held by wharf (and, over HTTP, kept for reconnecting
//! clients), so their size and number must not follow the guest's memory limit.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_programs_artifacts::MCP_HOSTILE;

use crate::util::wharf;

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

impl Client {
    fn start() -> Client {
        Client::start_with(&["--max-memory", "16MiB", "--timeout", "60s", MCP_HOSTILE])
    }

    /// `wharf mcp ARGS` over stdio, initialized.
    fn start_with(args: &[&str]) -> Client {
        let mut all = vec!["mcp"];
        all.extend(args);
        let mut child = wharf(&all).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut client = Client { child, stdin, stdout, next: 1 };
        let init =
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
        client.request("initialize", init);
        client.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        client
    }

    fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request; returns its result and the lines (notifications) that came before it.
    fn request(&mut self, method: &str, params: Value) -> (Value, Vec<String>) {
        let id = self.next;
        self.next += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut before = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "wharf mcp closed stdout");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return (message["result"].clone(), before);
            }
            before.push(line);
        }
    }

    fn call(&mut self, tool: &str, count: u32, kib: u32) -> (Value, Vec<String>) {
        let params = json!({"name": format!("mcp_hostile.{tool}"), "arguments": {"count": count, "kib": kib},
            "_meta": {"progressToken": "p"}});
        self.request("tools/call", params)
    }

    /// wharf's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
pub fn mcp_hostile() {
    let mut client = Client::start();
    // A guest of 16 MiB adds 100 images of 1 MiB: before, wharf held them all (and their
    // base64), peaking near 500 MiB and answering with a 140 MB result.
    let (result, _) = client.call("content-flood", 100, 1024);
    assert_eq!(result["isError"], true, "{}", &result.to_string()[..result.to_string().len().min(300)]);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("more content than a result may hold"), "{text}");
    let peak = client.peak_rss_mib();
    assert!(peak < 250, "wharf peaked at {peak} MiB");
    // Within the limits, content works as before.
    let (result, _) = client.call("content-flood", 10, 64);
    assert_eq!(result["isError"], false);
    assert_eq!(result["content"].as_array().unwrap().len(), 10);

    // Log and progress messages of 1 MiB reach the client cut to 64 KiB.
    for tool in ["log-flood", "progress-flood"] {
        let (result, notes) = client.call(tool, 4, 1024);
        assert_eq!(result["structuredContent"]["result"], 4, "{tool}");
        assert_eq!(notes.len(), 4, "{tool}");
        for note in &notes {
            assert!(note.len() < 70 * 1024, "{tool}: a notification of {} bytes", note.len());
            assert!(note.contains("cut by wharf: 1048576 bytes"), "{tool}");
        }
    }

    // 2,000 tiny notifications at once: a burst of 100 goes, the rest is paced (50 a second)
    // and dropped; before, all 2,000 were sent.
    for tool in ["log-flood", "progress-flood"] {
        let started = Instant::now();
        let (result, notes) = client.call(tool, 2000, 0);
        assert_eq!(result["structuredContent"]["result"], 2000, "{tool}");
        let allowed = 100 + (started.elapsed().as_secs_f64() * 50.0) as usize + 5;
        assert!(notes.len() <= allowed, "{tool}: {} notifications (at most {allowed})", notes.len());
        assert!(notes.len() >= 100, "{tool}: the burst was not sent ({})", notes.len());
        // The bucket refills: a later call of the same session gets its own burst.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--tool-names underscore` promises names in `[a-zA-Z0-9_-]{1,64}`: the management tools of
/// `--allow-load` too (before: `wharf.load`, `wharf.unload`, `wharf.list`, which such APIs
/// refuse, failing the whole tool list), and a loaded component's. Every name stays unique.
#[test]
fn mcp_underscore_names_hold_for_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(MCP_HOSTILE, dir.path().join("extra.wasm")).unwrap();
    let allow = dir.path().to_str().unwrap();
    let mut client = Client::start_with(&["--tool-names", "underscore", "--allow-load", allow, MCP_HOSTILE]);
    let check = |client: &mut Client| {
        let (result, _) = client.request("tools/list", json!({}));
        let names: Vec<String> =
            result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        for name in &names {
            let ok = (1..=64).contains(&name.len())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            assert!(ok, "`{name}` is not an underscore name: {names:?}");
        }
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        names
    };
    let names = check(&mut client);
    assert!(names.contains(&"wharf_load".to_string()), "{names:?}");
    let source = dir.path().join("extra.wasm");
    let (result, _) = client.request("tools/call", json!({"name": "wharf_load", "arguments": {"source": source}}));
    assert_eq!(result["isError"], false, "{result}");
    let names = check(&mut client);
    assert!(names.contains(&"extra_log_flood".to_string()), "{names:?}");
    let (result, _) = client.request("tools/call", json!({"name": "wharf_list", "arguments": {}}));
    assert_eq!(result["isError"], false, "{result}");
    let (result, _) =
        client.request("tools/call", json!({"name": "wharf_unload", "arguments": {"component": "extra"}}));
    assert_eq!(result["structuredContent"]["result"], true, "{result}");
}

/// A component whose types double per level: record `tN` holds two `tN-1`s, ... down to `t0`,
/// 2^LEVELS leaves from under 2 KB of component text (wasmparser allows a type of up to a million
/// nodes). Its tools take it as a parameter and return it; `ping` beside them is harmless.
fn schema_bomb(levels: usize) -> Vec<u8> {
    let mut wat = String::from("(component\n  (type $r0 (record (field \"a\" u8) (field \"b\" string)))\n");
    wat += "  (export $t0 \"t0\" (type $r0))\n";
    for i in 1..=levels {
        let p = i - 1;
        wat += &format!("  (type $r{i} (record (field \"a\" $t{p}) (field \"b\" $t{p})))\n");
        wat += &format!("  (export $t{i} \"t{i}\" (type $r{i}))\n");
    }
    wat += r#"  (core module $m
    (memory (export "mem") 1)
    (func (export "take") (param i32) (result i32) i32.const 0)
    (func (export "give") (param i32) (result i32) i32.const 0)
    (func (export "ping") (result i32) i32.const 0)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 8))
  (core instance $i (instantiate $m))
"#;
    wat += &format!(
        "  (func $take (param \"x\" $t{levels}) (result u32) (canon lift (core func $i \"take\") (memory $i \"mem\") (realloc (func $i \"realloc\"))))\n"
    );
    wat += &format!(
        "  (func $give (param \"n\" u32) (result $t{levels}) (canon lift (core func $i \"give\") (memory $i \"mem\") (realloc (func $i \"realloc\"))))\n"
    );
    wat += "  (func $ping (result u32) (canon lift (core func $i \"ping\")))\n";
    for f in ["take", "give", "ping"] {
        wat += &format!("  (export \"{f}\" (func ${f}))\n");
    }
    for n in 0..20 {
        wat += &format!("  (export \"take{n}\" (func $take))\n");
    }
    wat += ")\n";
    wat::parse_str(&wat).unwrap()
}

/// Schema bomb: before, wharf wrote every tool's types out whole (2^12 leaves per schema, 22
/// such tools), taking seconds and hundreds of MiB per component at startup, and again for a
/// client's `wharf.load`. Now a tool whose schemas would pass 10,000 nodes is not offered
/// (logged), a component's tools take 100,000 at most, and the rest is served.
#[test]
fn mcp_schema_bombs_are_not_tools() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(&bomb, schema_bomb(12)).unwrap();
    let started = Instant::now();
    let mut client = Client::start_with(&["--timeout", "10s", bomb.to_str().unwrap()]);
    let (result, _) = client.request("tools/list", json!({}));
    let listed = result.to_string();
    let peak = client.peak_rss_mib();
    eprintln!("tools/list: {} bytes, wharf peaked at {peak} MiB after {:?}", listed.len(), started.elapsed());
    let names: Vec<&str> = result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bomb.ping"], "{}", &listed[..listed.len().min(300)]);
    let (result, _) = client.request("tools/call", json!({"name": "bomb.ping", "arguments": {}}));
    assert_eq!(result["structuredContent"]["result"], 0, "{result}");
    assert!(peak < 200, "wharf peaked at {peak} MiB");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
