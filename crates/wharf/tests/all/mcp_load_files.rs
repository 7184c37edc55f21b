//! `wharf mcp --allow-load DIR`: what a client may name inside an allowed directory. A FIFO
//! there (or a device) must not block the server: opening one waited for a writer on a runtime
//! thread, and four such `wharf.load` calls froze every session on a 2-core machine.
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use test_programs_artifacts::MCP_TYPES;

use crate::util::wharf;

#[test]
fn loading_a_fifo_or_device_does_not_block_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tool.wasm");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let allowed = dir.path().to_str().unwrap();
    let mut child = wharf(&["mcp", "--allow-load", allowed, "--allow-load", "/dev", MCP_TYPES])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = vec![
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
    ];
    let sources = [fifo.to_str().unwrap(), "/dev/tty", "/dev/null"];
    for (n, source) in sources.iter().cycle().take(6).enumerate() {
        lines.push(format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"wharf.load","arguments":{{"source":"{source}"}}}}}}"#,
            10 + n
        ));
    }
    lines.push(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"mcp_types.add","arguments":{"a":1,"b":2}}}"#
            .to_string(),
    );
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut answers = Vec::new();
    while answers.len() < 8 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => answers.push(line),
            Err(_) => break,
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let add = answers.iter().any(|a| a.contains(r#""id":3"#) && a.contains(r#"\"result\":3"#));
    assert!(add, "the server stopped answering: {answers:#?}");
    let refused = answers.iter().filter(|a| a.contains("not a regular file") || a.contains("not under any")).count();
    assert_eq!(refused, 6, "{answers:#?}");
}

#[test]
fn a_layout_with_a_fifo_or_a_device_is_refused() {
    // An OCI layout in an allowed directory whose `index.json` is a FIFO, or whose blob is a
    // symlink to `/dev/zero`: refused, never waited on or read for ever.
    use crate::util::run;
    let dir = tempfile::tempdir().unwrap();
    let fifo_layout = dir.path().join("fifo");
    std::fs::create_dir_all(&fifo_layout).unwrap();
    std::fs::write(fifo_layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(fifo_layout.join("index.json")).status().unwrap().success());
    let source = format!("oci:{}", fifo_layout.display());
    let start = std::time::Instant::now();
    let out = run(wharf(&["run", &source]));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());

    // A blob linked to /dev/zero, named by a tag in a real index.
    let zero_layout = dir.path().join("zero");
    let digest = "sha256:".to_string() + &"0".repeat(64);
    std::fs::create_dir_all(zero_layout.join("blobs/sha256")).unwrap();
    std::fs::write(zero_layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        zero_layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":100,"annotations":{{"org.opencontainers.image.ref.name":"x"}}}}]}}"#
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero_layout.join("blobs/sha256").join("0".repeat(64))).unwrap();
    let source = format!("oci:{}:x", zero_layout.display());
    let start = std::time::Instant::now();
    let out = run(wharf(&["run", &source]));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}
