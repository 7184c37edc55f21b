//! Directory grants stay where they were granted: a directory renamed and replaced by a
//! symlink between two requests does not move the grant, and grants that nest inside a
//! read-write grant are refused.
use test_programs_artifacts::{CLI_FS, HTTP_ECHO};

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
