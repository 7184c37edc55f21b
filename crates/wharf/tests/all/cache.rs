//! The compile cache: hits, and recovery from corrupt entries.
use std::path::{Path, PathBuf};

use test_programs_artifacts::{CLI_BIG, CLI_ECHO};

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
