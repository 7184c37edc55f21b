//! Bad input gets one clear line and exit code 2, never a panic.
use test_programs_artifacts::{CLI_ECHO, CLI_UNSATISFIED};

use crate::util::{assert_one_clean_error, run, wharf};

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file
}

#[test]
pub fn cli_unsatisfied() {
    let out = run(wharf(&["run", CLI_UNSATISFIED])).expect_code(2);
    assert_one_clean_error(&out, "imports `wharf:test/missing`, which wharf does not provide");
}

#[test]
fn core_module_is_named_as_such() {
    // The smallest valid core module: magic and version 1.
    let file = write_temp(b"\0asm\x01\0\0\0");
    let out = run(wharf(&["run", file.path().to_str().unwrap()])).expect_code(2);
    assert_one_clean_error(&out, "is a core WebAssembly module, not a component");
}

#[test]
fn malformed_wasm() {
    let good = std::fs::read(CLI_ECHO).unwrap();
    let mut flipped = good.clone();
    for i in (good.len() / 3..good.len() / 3 + 64).step_by(4) {
        flipped[i] ^= 0xff;
    }
    for (bytes, needle) in [
        (good[..good.len() / 2].to_vec(), "is not a valid component"),
        (flipped, "is not a valid component"),
        (b"\0asm\x0d\0\x01\0garbage".to_vec(), "is not a valid component"),
        (b"#!/bin/sh\necho hi\n".to_vec(), "is not a WebAssembly file"),
        (Vec::new(), "is not a WebAssembly file"),
    ] {
        let file = write_temp(&bytes);
        let out = run(wharf(&["run", file.path().to_str().unwrap()])).expect_code(2);
        assert_one_clean_error(&out, needle);
    }
}

#[test]
fn missing_file_and_bad_flags() {
    let out = run(wharf(&["run", "/no/such/file.wasm"])).expect_code(2);
    assert_one_clean_error(&out, "cannot read /no/such/file.wasm");
    for (flag, value, needle) in [
        ("--max-memory", "lots", "invalid max-memory `lots`"),
        ("--timeout", "soon", "invalid timeout `soon`"),
        ("--allow-net", "0x7f000001", "invalid allow-net `0x7f000001`"),
        ("--allow-net", "*.*.example.com", "invalid allow-net"),
        ("--dir", "/no/such/dir", "cannot grant directory /no/such/dir"),
        ("--env", "=x", "invalid env `=x`"),
    ] {
        let out = run(wharf(&["run", flag, value, CLI_ECHO])).expect_code(2);
        assert_one_clean_error(&out, needle);
    }
}

#[test]
fn bad_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    for (text, needle) in [
        ("allow_net = [\"a:b\"]", "invalid allow-net `a:b`"),
        ("max_memory = 12", "invalid type"),
        ("evil = true", "unknown field `evil`"),
        ("env = [", "in policy file"),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = run(wharf(&["run", "--policy", path.to_str().unwrap(), CLI_ECHO])).expect_code(2);
        assert_one_clean_error(&out, needle);
    }
    let out = run(wharf(&["run", "--policy", "/no/such/policy.toml", CLI_ECHO])).expect_code(1);
    assert_one_clean_error(&out, "cannot read policy file /no/such/policy.toml");
}

#[test]
fn policy_file_grants() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/hello.txt"), "from the policy").unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "env = [\"A=1\"]\ndirs = [\"data::/d:ro\"]\ntimeout = \"10s\"\n").unwrap();
    let policy = path.to_str().unwrap();
    let out = run(wharf(&["run", "--policy", policy, test_programs_artifacts::CLI_FS, "read", "/d/hello.txt"]))
        .expect_code(0);
    assert_eq!(out.stdout, "ok: from the policy\n");
    let out = run(wharf(&["run", "--policy", policy, "-e", "B=2", test_programs_artifacts::CLI_ENV])).expect_code(0);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["A=1", "B=2"]);
}
