//! The compile cache: hits, and recovery from corrupt entries.
use std::path::{Path, PathBuf};

use test_programs_artifacts::{CLI_BIG, CLI_ECHO, HTTP_HELLO};

use crate::util::{run, wharf_with_cache};

fn logged_run(cache: &Path) -> crate::util::Run {
    let mut cmd = wharf_with_cache(cache, &["run", CLI_BIG, "12345"]);
    cmd.env("WHARF_LOG", "wharf_host=debug");
    let out = run(cmd).expect_code(0);
    assert_eq!(out.stdout.lines().next().unwrap().split(" = ").next(), Some("blob[12345]"));
    out
}

fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for fingerprint in std::fs::read_dir(dir).unwrap() {
        for entry in std::fs::read_dir(fingerprint.unwrap().path()).unwrap() {
            found.push(entry.unwrap().path());
        }
    }
    found
}

#[test]
pub fn cli_big() {
    assert!(std::fs::metadata(CLI_BIG).unwrap().len() > 2_000_000, "the cache test wants a ~2 MB component");
    let cache = tempfile::tempdir().unwrap();
    let first = logged_run(cache.path());
    assert!(first.stderr.contains("compile cache: Miss, compiling"), "{}", first.stderr);
    let second = logged_run(cache.path());
    assert!(second.stderr.contains("compile cache: hit"), "{}", second.stderr);
    assert!(!second.stderr.contains("compiling"), "{}", second.stderr);
    assert_eq!(first.stdout, second.stdout);

    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    // Flip one byte in the middle of the compiled code.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&entries[0], &bytes).unwrap();
    let third = logged_run(cache.path());
    assert!(third.stderr.contains("discarding bad entry: checksum mismatch"), "{}", third.stderr);
    assert_eq!(third.stdout, first.stdout);
    assert!(logged_run(cache.path()).stderr.contains("compile cache: hit"));

    // Truncated, and then replaced by garbage: both recovered.
    for damage in [bytes[..100].to_vec(), b"not a cache entry".to_vec()] {
        std::fs::write(&entries[0], damage).unwrap();
        let out = logged_run(cache.path());
        assert!(out.stderr.contains("discarding bad entry"), "{}", out.stderr);
        assert!(logged_run(cache.path()).stderr.contains("compile cache: hit"));
    }
}

#[test]
fn compile_then_clean() {
    let cache = tempfile::tempdir().unwrap();
    let out = run(wharf_with_cache(cache.path(), &["compile", CLI_ECHO])).expect_code(0);
    assert_eq!(out.stdout, format!("{CLI_ECHO}: compiled\n"));
    let out = run(wharf_with_cache(cache.path(), &["compile", CLI_ECHO])).expect_code(0);
    assert_eq!(out.stdout, format!("{CLI_ECHO}: already cached\n"));
    let out = run(wharf_with_cache(cache.path(), &["cache", "clean"])).expect_code(0);
    assert!(out.stdout.starts_with("removed "), "{}", out.stdout);
    assert!(!cache.path().exists());
    let out = run(wharf_with_cache(cache.path(), &["compile", CLI_ECHO])).expect_code(0);
    assert_eq!(out.stdout, format!("{CLI_ECHO}: compiled\n"));
}

/// `wharf serve` compiles components with little data for an engine that copies it (another
/// compiled form than `wharf run`'s): `wharf compile` fills both, so serving starts from the cache.
#[test]
fn compile_fills_the_cache_for_serve_too() {
    let cache = tempfile::tempdir().unwrap();
    run(wharf_with_cache(cache.path(), &["compile", HTTP_HELLO])).expect_code(0);
    let mut cmd = wharf_with_cache(cache.path(), &["serve", "--listen", "127.0.0.1:0", HTTP_HELLO]);
    cmd.env("WHARF_LOG", "wharf_host=debug");
    let served = crate::util::Served::spawn(cmd);
    let log = served.log();
    assert!(log.contains("compile cache: hit"), "{log}");
    assert!(!log.contains("compiling"), "{log}");
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn echo_run(cache: &Path) -> crate::util::Run {
    let mut cmd = wharf_with_cache(cache, &["run", CLI_ECHO, "x"]);
    cmd.env("WHARF_LOG", "wharf_host=debug");
    run(cmd).expect_code(0)
}

#[test]
fn cache_is_owner_only_and_refused_when_others_can_write() {
    let parent = tempfile::tempdir().unwrap();
    let cache = parent.path().join("cache");
    echo_run(&cache);
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1);
    let fingerprint = entries[0].parent().unwrap();
    assert_eq!((mode(&cache), mode(fingerprint), mode(&entries[0])), (0o700, 0o700, 0o600));
    assert!(echo_run(&cache).stderr.contains("compile cache: hit"));

    // Writable by others: the cache is not used at all (nothing loaded, nothing written).
    for (dir, why) in [(cache.as_path(), "others can write to it"), (fingerprint, "others can write to it")] {
        set_mode(dir, 0o777);
        let out = echo_run(&cache);
        assert!(out.stderr.contains("compile cache: not using") && out.stderr.contains(why), "{}", out.stderr);
        assert!(!out.stderr.contains("compile cache: hit"), "{}", out.stderr);
        set_mode(dir, 0o700);
    }
    // One entry writable by others: not loaded, replaced by an owner-only one.
    set_mode(&entries[0], 0o666);
    let out = echo_run(&cache);
    assert!(out.stderr.contains("not loading entry: others can write to it"), "{}", out.stderr);
    assert_eq!(mode(&entries[0]), 0o600);
    assert!(echo_run(&cache).stderr.contains("compile cache: hit"));

    // A symlinked entry is refused too.
    std::fs::rename(&entries[0], parent.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(parent.path().join("elsewhere"), &entries[0]).unwrap();
    assert!(echo_run(&cache).stderr.contains("not loading entry: it is a symbolic link"));
}
