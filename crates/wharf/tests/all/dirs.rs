//! Directory grants stay where they were granted: a directory renamed and replaced by a
//! symlink between two requests does not move the grant, grants that nest inside a read-write
//! grant are refused (within one policy and across the components of `serve` and `mcp`), and a
//! guest cannot plant a symlink that leads host tools out of its grant.
use std::path::Path;

use test_programs_artifacts::{CLI_FS, HTTP_ECHO, MCP_COUNTER, P3_CLI};

use crate::util::{Served, assert_one_clean_error, get, run, wharf};

/// `root/outside.txt` (the secret) and `root/a/data/uploads/file.txt`.
fn fixture() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("a/data/uploads")).unwrap();
    std::fs::write(root.path().join("a/data/uploads/file.txt"), "upload").unwrap();
    std::fs::write(root.path().join("outside.txt"), "SECRET").unwrap();
    root
}

#[test]
fn sandbox_dir_grant_does_not_follow_a_swapped_symlink() {
    let root = fixture();
    let uploads = root.path().join("a/data/uploads");
    let grant = format!("{}::/uploads", uploads.display());
    let server = Served::start(&["--dir", &grant, HTTP_ECHO]);
    assert_eq!(get(&server.url("/read?path=/uploads/file.txt")), (200, "upload".to_string()));

    // What a guest with a read-write grant on `data` could do between two requests: move the
    // granted directory away and put a symlink climbing out of the tree in its place.
    std::fs::rename(&uploads, root.path().join("a/data/moved")).unwrap();
    std::os::unix::fs::symlink("../..", &uploads).unwrap();
    let (status, body) = get(&server.url("/read?path=/uploads/outside.txt"));
    assert!(!body.contains("SECRET"), "grant followed the symlink: {status} {body}");
    // The grant is still the directory it was: now under its new name.
    assert_eq!(get(&server.url("/read?path=/uploads/file.txt")), (200, "upload".to_string()));
}

#[test]
fn sandbox_nested_dir_grants_are_refused() {
    let root = fixture();
    let data = root.path().join("a/data");
    let outer = format!("{}::/data", data.display());
    let inner = format!("{}::/uploads", data.join("uploads").display());
    for dirs in [[&outer, &inner], [&inner, &outer]] {
        let out = run(wharf(&["run", "--dir", dirs[0], "--dir", dirs[1], CLI_FS, "list", "/data"])).expect_code(2);
        assert_one_clean_error(&out, "lies inside read-write --dir");
        assert!(out.stderr.contains("uploads") && out.stderr.contains("a/data"), "{}", out.stderr);
    }
    // Through a symlink in the given path too: grants compare by real path.
    std::os::unix::fs::symlink(data.join("uploads"), root.path().join("alias")).unwrap();
    let alias = format!("{}::/uploads", root.path().join("alias").display());
    let out = run(wharf(&["run", "--dir", &outer, "--dir", &alias, CLI_FS, "list", "/data"])).expect_code(2);
    assert_one_clean_error(&out, "lies inside read-write --dir");

    // A read-only outer grant cannot rename anything: allowed. So is the same directory twice.
    let outer_ro = format!("{outer}:ro");
    let out = run(wharf(&["run", "--dir", &outer_ro, "--dir", &inner, CLI_FS, "read", "/uploads/file.txt"]));
    assert_eq!(out.expect_code(0).stdout, "ok: upload\n");
    let twice = format!("{}::/again", data.display());
    run(wharf(&["run", "--dir", &outer, "--dir", &twice, CLI_FS, "list", "/again"])).expect_code(0);
}

/// Where a symlink on the host leads, resolved by the host (as `tar`, a backup or a shell would).
fn host_target(link: &Path) -> Option<std::path::PathBuf> {
    std::fs::canonicalize(link).ok()
}

#[test]
fn guest_symlinks_cannot_leave_the_grant() {
    let root = fixture();
    let data = root.path().join("a/data");
    let grant = format!("{}::/data", data.display());
    let p2 = |args: &[&str]| {
        let mut all = vec!["run", "--dir", &grant, CLI_FS];
        all.extend(args);
        run(wharf(&all))
    };
    let p3 = |args: &[&str]| {
        let mut all = vec!["run", "--dir", &grant, P3_CLI];
        all.extend(args);
        run(wharf(&all))
    };
    p2(&["mkdir", "/data/deep/er"]).expect_code(0);
    // Absolute targets, `..` anywhere (even one that stays inside where it is created: moved
    // up a level it would not), and an empty target are refused, by both WASI generations.
    let refused = ["../../outside.txt", "../x", "deep/../../outside.txt", "/etc/passwd", "..", "a/..", ""];
    for (i, target) in refused.iter().enumerate() {
        for name in [format!("up{i}"), format!("deep/er/up{i}")] {
            let out = p2(&["symlink", target, &name]).expect_code(1);
            assert!(out.stdout.contains("not-permitted"), "0.2 {target:?}: {}", out.stdout);
            let out = p3(&["symlink", target, &name]).expect_code(1);
            assert!(out.stderr.contains("NotPermitted"), "0.3 {target:?}: {}", out.stderr);
            assert!(std::fs::symlink_metadata(data.join(&name)).is_err(), "{name} -> {target:?} was created");
        }
    }
    // Plain relative targets work, and stay inside wherever the guest moves them.
    assert_eq!(p2(&["symlink", "uploads/file.txt", "ok2"]).expect_code(0).stdout, "ok: symlinked\n");
    assert_eq!(p3(&["symlink", "./uploads", "ok3"]).expect_code(0).stdout, "symlinked\n");
    assert_eq!(p2(&["read", "/data/ok2"]).expect_code(0).stdout, "ok: upload\n");
    assert_eq!(p2(&["symlink", "er", "deep/link"]).expect_code(0).stdout, "ok: symlinked\n");
    p2(&["rename", "/data/deep/link", "/data/moved"]).expect_code(0);
    p2(&["link", "/data/ok2", "/data/deep/er/hard"]).expect_code(0);
    for name in ["ok2", "ok3", "moved", "deep/er/hard"] {
        let target = host_target(&data.join(name));
        assert!(
            target.as_ref().is_none_or(|t| t.starts_with(data.canonicalize().unwrap())),
            "{name} leads to {target:?}"
        );
    }
    // A grant's root cannot be renamed by its guest.
    p2(&["rename", "/data", "/data/deep/root"]).expect_code(1);
    p2(&["rename", "/data/.", "/data/deep/root"]).expect_code(1);
    assert!(data.join("uploads/file.txt").exists());
}

/// A `wharf.toml` serving `a` (read-write `data`) and `b` (a grant `b_dir`).
fn two_components(root: &Path, b_dir: &str) -> std::path::PathBuf {
    let manifest = root.join("wharf.toml");
    let text = format!(
        r#"
        [[trigger.http]]
        route = "/a"
        component = "a"
        [[trigger.http]]
        route = "/..."
        component = "b"
        [component.a]
        source = "{HTTP_ECHO}"
        dirs = ["a/data::/data"]
        [component.b]
        source = "{HTTP_ECHO}"
        dirs = ["{b_dir}"]
        "#
    );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

#[test]
fn grants_overlapping_across_components_are_refused() {
    let root = fixture();
    std::os::unix::fs::symlink("a/data/uploads", root.path().join("alias")).unwrap();
    // serve: b's grant inside a's read-write one (directly, read-only, through a symlink).
    for b_dir in ["a/data/uploads::/uploads", "a/data/uploads::/uploads:ro", "alias::/up"] {
        let manifest = two_components(root.path(), b_dir);
        let out = run(wharf(&["serve", "--listen", "127.0.0.1:0", manifest.to_str().unwrap()])).expect_code(2);
        assert_one_clean_error(&out, "component b's directory");
        assert!(out.stderr.contains("inside component a's read-write directory"), "{}", out.stderr);
    }
    // The same directory for both, read-write too, is shared, not nested: allowed.
    let manifest = two_components(root.path(), "a/data::/shared");
    let server = Served::start(&[manifest.to_str().unwrap()]);
    assert_eq!(get(&server.url("/read?path=/shared/uploads/file.txt")), (200, "upload".to_string()));
    drop(server);

    // mcp: each component's `::POLICY` grants, checked against each other before serving.
    let policy = |name: &str, dirs: &str| {
        let path = root.path().join(name);
        std::fs::write(&path, format!("dirs = [\"{dirs}\"]\n")).unwrap();
        format!("{}::{}", MCP_COUNTER, path.display())
    };
    let data = root.path().join("a/data");
    let outer = policy("outer.toml", &format!("{}::/data", data.display()));
    let inner = policy("inner.toml", &format!("{}::/uploads:ro", data.join("uploads").display()));
    let out = run(wharf(&["mcp", &format!("one={outer}"), &format!("two={inner}")])).expect_code(2);
    assert_one_clean_error(&out, "component two's directory");
    assert!(out.stderr.contains("inside component one's read-write directory"), "{}", out.stderr);
    let outer_ro = policy("outer-ro.toml", &format!("{}::/data:ro", data.display()));
    // Accepted: it starts serving stdio (and stops at the closed stdin).
    let out = run(wharf(&["mcp", &format!("one={outer_ro}"), &format!("two={inner}")]));
    assert!(out.code != 2 && !out.stderr.contains("lies inside"), "{}", out.stderr);
}

#[test]
fn read_only_suffix_in_another_case_is_refused() {
    // `--dir X::/data:RO` was a read-write grant named `/data:RO`: the guest wrote through it.
    let root = fixture();
    let data = root.path().join("a/data");
    for suffix in [":RO", ":Ro", ":ro ", ":rw"] {
        let grant = format!("{}::/data{suffix}", data.display());
        let path = format!("/data{suffix}/planted.txt");
        let out = run(wharf(&["run", "--dir", &grant, CLI_FS, "write", &path, "x"])).expect_code(2);
        assert_one_clean_error(&out, "guest path may not hold `:`");
    }
    // The same in a policy file.
    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, format!("dirs = [\"{}::/data:RO\"]\n", data.display())).unwrap();
    let out = run(wharf(&["run", "--policy", policy.to_str().unwrap(), CLI_FS, "write", "/data:RO/p", "x"]));
    assert!(out.expect_code(2).stderr.contains("guest path may not hold `:`"));
    assert!(!data.join("planted.txt").exists() && !data.join("p").exists());
}
