//! Deny by default: environment, files, network, time and memory.
use std::io::{Read, Write};
use std::net::TcpListener;

use test_programs_artifacts::{CLI_ENV, CLI_FS, CLI_LOOP, CLI_MEMORY, CLI_NET};

use crate::util::{assert_one_clean_error, run, wharf};

#[test]
pub fn cli_env() {
    let mut cmd = wharf(&["run", CLI_ENV]);
    cmd.env("WHARF_TEST_SECRET", "s3cret");
    let out = run(cmd).expect_code(0);
    assert_eq!(out.stdout, "", "a guest with no grants must see no environment");

    let mut cmd =
        wharf(&["run", "--env", "GREETING=hi there", "-e", "WHARF_TEST_SECRET", "-e", "WHARF_TEST_UNSET", CLI_ENV]);
    cmd.env("WHARF_TEST_SECRET", "s3cret").env("WHARF_TEST_OTHER", "x").env_remove("WHARF_TEST_UNSET");
    let out = run(cmd).expect_code(0);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["GREETING=hi there", "WHARF_TEST_SECRET=s3cret"]);
}

/// A granted directory tree: `root/granted/{inside.txt, link -> ../outside.txt}`,
/// `root/outside.txt`, `root/ro/{ro.txt}`.
fn fs_fixture() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::create_dir_all(root.path().join("ro")).unwrap();
    std::fs::write(granted.join("inside.txt"), "inside").unwrap();
    std::fs::write(root.path().join("outside.txt"), "SECRET").unwrap();
    std::fs::write(root.path().join("ro/ro.txt"), "original").unwrap();
    std::os::unix::fs::symlink("../outside.txt", granted.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.join("abs-link")).unwrap();
    root
}

#[test]
pub fn cli_fs() {
    let root = fs_fixture();
    let granted = format!("{}::/data", root.path().join("granted").display());
    let fs = |args: &[&str]| {
        let mut all = vec!["run", "--dir", &granted, CLI_FS];
        all.extend(args);
        run(wharf(&all))
    };
    assert_eq!(fs(&["read", "/data/inside.txt"]).expect_code(0).stdout, "ok: inside\n");
    assert_eq!(
        fs(&["list", "/data"]).expect_code(0).stdout.trim_end().split(": ").nth(1).map(|s| {
            let mut v: Vec<&str> = s.split(',').collect();
            v.sort();
            v.join(",")
        }),
        Some("abs-link,inside.txt,link".to_string())
    );
    for escape in ["/data/../outside.txt", "/data/link", "/data/abs-link", "/etc/passwd", "../outside.txt", "/"] {
        let out = fs(&["read", escape]).expect_code(1);
        assert!(out.stdout.starts_with("error: "), "{escape}: {}", out.stdout);
        assert!(!out.stdout.contains("SECRET") && !out.stdout.contains("root:"), "{escape} leaked: {}", out.stdout);
    }
    assert_eq!(fs(&["write", "/data/new.txt", "written"]).expect_code(0).stdout, "ok: written\n");
    assert_eq!(std::fs::read_to_string(root.path().join("granted/new.txt")).unwrap(), "written");
    fs(&["write", "/data/../escaped.txt", "x"]).expect_code(1);
    assert!(!root.path().join("escaped.txt").exists());

    // No grant at all: nothing is visible.
    let out = run(wharf(&["run", CLI_FS, "read", "/etc/passwd"])).expect_code(1);
    assert!(out.stdout.starts_with("error: "), "{}", out.stdout);
}

#[test]
fn read_only_dir_cannot_be_written() {
    let root = fs_fixture();
    let ro = format!("{}::/ro:ro", root.path().join("ro").display());
    let out = run(wharf(&["run", "--dir", &ro, CLI_FS, "read", "/ro/ro.txt"])).expect_code(0);
    assert_eq!(out.stdout, "ok: original\n");
    for target in ["/ro/ro.txt", "/ro/new.txt"] {
        let out = run(wharf(&["run", "--dir", &ro, CLI_FS, "write", target, "changed"])).expect_code(1);
        assert!(out.stdout.starts_with("error: "), "{}", out.stdout);
    }
    assert_eq!(std::fs::read_to_string(root.path().join("ro/ro.txt")).unwrap(), "original");
    assert!(!root.path().join("ro/new.txt").exists());
}

#[test]
pub fn cli_loop() {
    let out = run(wharf(&["run", "--timeout", "300ms", CLI_LOOP])).expect_code(124);
    assert_eq!(out.stdout, "looping\n");
    assert_one_clean_error(&out, "guest timed out after 300ms");
}

#[test]
pub fn cli_memory() {
    let out = run(wharf(&["run", "--max-memory", "32MiB", CLI_MEMORY, "grow", "8"])).expect_code(0);
    assert!(out.stdout.ends_with("done: 8 MiB\n"), "{}", out.stdout);
    let out = run(wharf(&["run", "--max-memory", "32MiB", CLI_MEMORY, "grow", "200"])).expect_code(137);
    assert!(!out.stdout.contains("done"), "{}", out.stdout);
    assert!(
        out.stderr.lines().last().unwrap().contains("error: guest exceeded its memory limit of 32MiB"),
        "{}",
        out.stderr
    );
    // The default limit (512MiB) applies without a flag.
    run(wharf(&["run", CLI_MEMORY, "grow", "600"])).expect_code(137);
}

/// A one-connection-at-a-time TCP server on 127.0.0.1 that answers `pong:` + what it read.
fn pong_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            let _ = stream.write_all(&[b"pong:".as_slice(), &buf].concat());
        }
    });
    port
}

#[test]
pub fn cli_net() {
    let port = pong_server();
    let addr = format!("127.0.0.1:{port}");
    let connect = |grants: &[&str], target: &str| {
        let mut args = vec!["run"];
        for g in grants {
            args.extend(["--allow-net", g]);
        }
        args.extend([CLI_NET, "connect", target]);
        run(wharf(&args))
    };
    let denied = |out: crate::util::Run| {
        let out = out.expect_code(1);
        assert!(out.stdout.starts_with("error: "), "{}", out.stdout);
    };
    denied(connect(&[], &addr));
    assert_eq!(connect(&[&addr], &addr).expect_code(0).stdout, "ok: pong:ping\n");
    assert_eq!(connect(&["127.0.0.0/8"], &addr).expect_code(0).stdout, "ok: pong:ping\n");
    // A name rule reaches no loopback address without an address rule (see `net.rs`).
    denied(connect(&[&format!("localhost:{port}")], &format!("localhost:{port}")));
    assert_eq!(
        connect(&[&format!("localhost:{port}"), &addr], &format!("localhost:{port}")).expect_code(0).stdout,
        "ok: pong:ping\n"
    );
    denied(connect(&[&format!("127.0.0.1:{}", port.wrapping_add(1))], &addr));
    denied(connect(&["127.0.0.2", "10.0.0.0/8", "*.localhost"], &addr));
    denied(connect(&[&addr], &format!("[::ffff:127.0.0.2]:{port}")));
}
