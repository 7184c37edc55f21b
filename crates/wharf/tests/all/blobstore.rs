//! `wasi:blobstore` through `wharf run`, on the `fs` (default), `memory` and `s3` (a real moto
//! server, `moto.rs`) backends: every function, grants, escaping names, a 256 MiB object with
//! bounded host memory, concurrent writers and readers. `blobstore_s3.rs` has the S3-only cases.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_programs_artifacts::BLOB_STORE;

use crate::util::{Run, run, wharf};

use crate::moto::Moto;

/// A temp dir holding the data dir and a runtime config.
pub struct Blob {
    pub dir: tempfile::TempDir,
}

impl Blob {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runtime.toml"), config).unwrap();
        Blob { dir }
    }

    fn fs() -> Self {
        Blob::new("")
    }

    fn memory(quota: u64) -> Self {
        Blob::new(&format!("[blobstore.stores.default]\ntype = \"memory\"\nquota = {quota}\n"))
    }

    /// The store `default` in `bucket` (created) of `moto`.
    pub fn s3(moto: &Moto, bucket: &str) -> Self {
        moto.create_bucket(bucket);
        Blob::new(&moto.store_config("default", bucket))
    }

    /// The default fs store's directory.
    fn store(&self) -> PathBuf {
        self.dir.path().join("data/blobstore/default")
    }

    /// `wharf run --runtime-config .. --blob G.. blob_store ARGS`.
    pub fn cmd(&self, grants: &[&str], args: &[&str]) -> Command {
        let config = self.dir.path().join("runtime.toml");
        let mut all = vec!["run", "--runtime-config", config.to_str().unwrap()];
        for g in grants {
            all.extend(["--blob", g]);
        }
        all.push(BLOB_STORE);
        all.extend(args);
        let mut cmd = wharf(&all);
        cmd.env("WHARF_DATA_DIR", self.dir.path().join("data"));
        cmd
    }

    pub fn run(&self, grants: &[&str], args: &[&str]) -> Run {
        run(self.cmd(grants, args))
    }
}

/// Every function, and names that are odd but valid (kept exactly), on every backend.
#[test]
pub fn blob_store() {
    let moto = Moto::start();
    for (backend, blob) in [("fs", Blob::fs()), ("memory", Blob::memory(1 << 20)), ("s3", Blob::s3(&moto, "every"))] {
        let out = blob.run(&["c1", "c2"], &["all", "c1", "c2"]);
        assert_eq!(out.code, 0, "{backend}: {out:?}");
        assert_eq!(out.stdout.trim(), "ok", "{backend}");
        let out = blob.run(&["c"], &["names", "c"]);
        assert_eq!((out.code, out.stdout.trim()), (0, "ok"), "{backend}: {out:?}");
    }
}

#[test]
fn blobstore_fs_persists_across_runs() {
    let blob = Blob::fs();
    blob.run(&["c"], &["write", "c", "x", "7", "1", "1"]).expect_code(0);
    let out = blob.run(&["c"], &["read", "c", "x", "1"]).expect_code(0);
    assert!(out.stdout.contains("read 1"), "{out:?}");
    assert_eq!(std::fs::read(blob.store().join("c/x")).unwrap(), vec![7u8; 1024]);
}

#[test]
fn blobstore_ungranted_container_is_denied() {
    let blob = Blob::fs();
    blob.run(&["c"], &["write", "c", "x", "7", "1", "1"]).expect_code(0);
    // `c` exists in the same store, but this run is granted `other` only.
    let out = blob.run(&["other"], &["get", "c"]).expect_code(1);
    assert!(out.stdout.contains("access denied: container `c` is not granted"), "{out:?}");
    let out = blob.run(&[], &["all", "c", "d"]).expect_code(1);
    assert!(out.stdout.contains("access denied"), "{out:?}");
}

#[test]
fn blobstore_grant_errors_are_clean() {
    let blob = Blob::fs();
    let out = blob.run(&["c=nowhere"], &["get", "c"]).expect_code(2);
    assert!(out.stderr.contains("no store named `nowhere`"), "{out:?}");
    for bad in ["..", "../x", "a/b", ".x"] {
        let out = blob.run(&[bad], &["get", "c"]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.contains(&format!("invalid blob `{bad}`")), "{bad}: {out:?}");
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn blobstore_escaping_names_are_refused() {
    let blob = Blob::fs();
    // A secret outside the store, and a symlink to it planted in the container.
    let secret = blob.dir.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    std::fs::create_dir_all(blob.store().join("c")).unwrap();
    std::os::unix::fs::symlink(&secret, blob.store().join("c/link")).unwrap();
    let out = blob.run(&["c"], &["escape", "c"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret");
    let escaped: Vec<_> = files(blob.dir.path()).into_iter().filter(|p| p.ends_with("escaped")).collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    assert!(!Path::new("/tmp/escaped").exists());
}

#[test]
fn blobstore_memory_quota_is_enforced() {
    let blob = Blob::memory(1 << 20);
    let out = blob.run(&["c"], &["big", "c", "2"]).expect_code(1);
    assert!(out.stdout.contains("quota of 1048576 bytes exceeded"), "{out:?}");
    blob.run(&["c"], &["write", "c", "x", "1", "512", "3"]).expect_code(0);
}

/// The peak resident set (`VmHWM`, KiB) of a running process, if it is still running.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `big C 256` (256 MiB written through the body stream, read back as a stream) under `blob`,
/// sampling the wharf process's peak RSS; returns it in KiB.
pub fn big_round_trip(blob: &Blob, backend: &str) -> u64 {
    let mut child =
        blob.cmd(&["big"], &["big", "big", "256"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(300), "{backend}: 256 MiB round trip took over 5 minutes");
        peak = peak_rss_kib(child.id()).unwrap_or(peak).max(peak);
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "ok", "{backend}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("blobstore {backend} 256 MiB: peak RSS of wharf {} MiB, {:?}", peak / 1024, started.elapsed());
    assert!(peak > 0, "VmHWM was never read");
    assert!(peak < 128 * 1024, "{backend}: peak RSS {} MiB: the value was buffered", peak / 1024);
    // Nothing staged is left behind.
    assert_eq!(std::fs::read_dir(blob.dir.path().join("data/blobstore/.spool")).unwrap().count(), 0);
    peak
}

/// 256 MiB in through the body stream and out as an input stream, on `fs`: the wharf process's
/// peak RSS stays far below the object's size.
#[test]
fn blobstore_256_mib_streams_with_bounded_memory() {
    let blob = Blob::fs();
    big_round_trip(&blob, "fs");
    assert_eq!(std::fs::metadata(blob.store().join("big/big")).unwrap().len(), 256 << 20);
}

/// Writes and reads whose sizes line up with no chunk, batch or budget boundary (100,003-byte
/// writes, 77,777-byte reads; 1 MiB + 1 writes, 3 MB reads, more than a chunk) round-trip every
/// byte of a pattern that does not repeat at powers of two, on `fs` and `memory`.
#[test]
fn blobstore_odd_write_and_read_sizes_round_trip() {
    for (backend, blob) in [("fs", Blob::fs()), ("memory", Blob::memory(8 << 20))] {
        for sizes in [["100003", "77777"], ["1048577", "3000000"]] {
            let out = blob.run(&["c"], &["big", "c", "5", sizes[0], sizes[1]]);
            assert_eq!((out.code, out.stdout.trim()), (0, "ok"), "{backend} {sizes:?}: {out:?}");
        }
    }
}

/// Copies and moves between containers of different stores (memory to fs and fs to memory)
/// stream through the spool; every function still passes.
#[test]
fn blobstore_copies_across_stores() {
    let blob = Blob::new("[blobstore.stores.mem]\ntype = \"memory\"\nquota = 1048576\n");
    for grants in [["c1=mem", "c2"], ["c1", "c2=mem"]] {
        let out = blob.run(&grants, &["all", "c1", "c2"]);
        assert_eq!((out.code, out.stdout.trim()), (0, "ok"), "{grants:?}: {out:?}");
    }
}

/// 4 writers (each its own byte) and 4 readers on one object, in 8 processes sharing the store
/// `blob` configures: every value a reader sees is one writer's, whole.
pub fn writers_and_readers(blob: &Blob) {
    blob.run(&["c"], &["write", "c", "x", "9", "256", "1"]).expect_code(0);
    let mut children = Vec::new();
    for i in 0..4u8 {
        let byte = (i + 1).to_string();
        children
            .push(blob.cmd(&["c"], &["write", "c", "x", &byte, "256", "25"]).stdout(Stdio::piped()).spawn().unwrap());
        children.push(blob.cmd(&["c"], &["read", "c", "x", "40"]).stdout(Stdio::piped()).spawn().unwrap());
    }
    let mut reads = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.ends_with("ok\n"), "{stdout}");
        if let Some(n) = stdout.lines().find_map(|l| l.strip_prefix("read ")) {
            reads += n.parse::<u32>().unwrap();
        }
    }
    assert_eq!(reads, 160, "every read found the object");
}

#[test]
fn blobstore_concurrent_writers_and_readers_see_whole_values() {
    writers_and_readers(&Blob::fs());
}

/// A process that dies while a value is being written (`kill -9`, a crash; `wharf run` at its
/// timeout when the spool writer is busy) drops nothing, so the value's staged temp file (up to
/// `max_object_size`) stayed on disk for ever. Now the next process granted the store removes
/// it, and what dead processes left in the store's `.tmp` (a copy's temp file, a deleted
/// container's trash), once older than a minute; temp files of live processes are locked and
/// stay (`wharf-blobstore` `stale::tests`).
#[test]
fn blobstore_leftovers_of_dead_processes_are_removed() {
    use std::io::BufRead;
    let blob = Blob::fs();
    let mut stalled = blob.cmd(&["c"], &["stall", "c", "8"]);
    let mut child = stalled.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "written");
    let spool = blob.dir.path().join("data/blobstore/.spool");
    let left = files(&spool);
    assert_eq!(left.len(), 1, "the stalled write has no temp file (nothing to test)");
    // A value still being written stays, however old: its process holds it locked.
    let ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::open(&left[0]).unwrap().set_modified(ago).unwrap();
    blob.run(&["c"], &["list", "c"]).expect_code(0);
    assert_eq!(files(&spool), left, "a live process's value was removed");
    child.kill().unwrap();
    child.wait().unwrap();
    // Leftovers of a minute ago: the spool file, a copy's temp file, a deleted container.
    let tmp = blob.store().join(".tmp");
    std::fs::create_dir_all(tmp.join("deletedXYZ/c")).unwrap();
    std::fs::write(tmp.join("deletedXYZ/c/obj"), "x").unwrap();
    std::fs::write(tmp.join(".tmpABC"), "x").unwrap();
    for path in left.iter().chain([&tmp.join(".tmpABC"), &tmp.join("deletedXYZ")]) {
        std::fs::File::open(path).unwrap().set_modified(ago).unwrap();
    }
    let out = blob.run(&["c"], &["list", "c"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(files(&spool), Vec::<PathBuf>::new(), "the spool still holds leftovers");
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_none(), "the store's .tmp still holds leftovers");
}
