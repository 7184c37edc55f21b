//! `wasi:keyvalue` through `wharf run`, on every backend: redb (the default), memory, and a real
//! Redis server; grants, persistence, concurrency across processes, crash safety, Redis down.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_programs_artifacts::{HTTP_COUNTER, KV_DRAFT, KV_STORE};

use crate::redis::{RedisServer, free_port};
use crate::util::{Run, Served, assert_one_clean_error, get, run, wharf};

/// A temp dir holding the data dir and a runtime config whose `default` store is `store`.
struct Kv {
    dir: tempfile::TempDir,
}

impl Kv {
    fn new(store: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runtime.toml"), format!("[keyvalue.stores.default]\n{store}\n")).unwrap();
        Kv { dir }
    }

    fn redb() -> Self {
        Kv::new("type = \"redb\"\npath = \"kv.redb\"")
    }

    fn memory() -> Self {
        Kv::new("type = \"memory\"")
    }

    fn redis(server: &RedisServer) -> Self {
        Kv::new(&format!("type = \"redis\"\nurl = \"{}\"", server.url()))
    }

    fn redb_path(&self) -> PathBuf {
        self.dir.path().join("kv.redb")
    }

    /// `wharf run --runtime-config .. --kv BUCKET GUEST ARGS` with the data dir in the temp dir.
    fn cmd(&self, bucket: &str, guest: &str, args: &[&str]) -> Command {
        let config = self.dir.path().join("runtime.toml");
        let mut all = vec!["run", "--runtime-config", config.to_str().unwrap(), "--kv", bucket, guest];
        all.extend(args);
        let mut cmd = wharf(&all);
        cmd.env("WHARF_DATA_DIR", self.dir.path().join("data"));
        cmd
    }

    fn run(&self, guest: &str, args: &[&str]) -> Run {
        run(self.cmd("b", guest, args))
    }

    fn get(&self, key: &str) -> String {
        self.run(KV_STORE, &["get", "b", key]).expect_code(0).stdout.trim().to_string()
    }
}

fn every_backend(redis: &RedisServer) -> Vec<(&'static str, Kv)> {
    vec![("redb", Kv::redb()), ("memory", Kv::memory()), ("redis", Kv::redis(redis))]
}

#[test]
pub fn kv_store() {
    let redis = RedisServer::start();
    for (name, kv) in every_backend(&redis) {
        let out = kv.run(KV_STORE, &["all", "b"]);
        assert_eq!(out.stdout, "ok\n", "{name}: {out:?}");
        assert_eq!(out.code, 0, "{name}: {out:?}");
    }
}

#[test]
pub fn kv_draft() {
    let redis = RedisServer::start();
    for (name, kv) in every_backend(&redis) {
        let out = kv.run(KV_DRAFT, &["b"]);
        assert_eq!((out.code, out.stdout.as_str()), (0, "ok\n"), "{name}: {out:?}");
    }
}

/// `wharf serve` grants buckets through the same flags and stores as `wharf run`.
#[test]
pub fn http_counter() {
    let kv = Kv::redb();
    let config = kv.dir.path().join("runtime.toml");
    let server = Served::start(&["--runtime-config", config.to_str().unwrap(), "--kv", "hits", HTTP_COUNTER]);
    for n in 1..=3 {
        assert_eq!(get(&server.url("/")), (200, format!("hits: {n}\n")));
    }
    drop(server);
    let server = Served::start(&["--runtime-config", config.to_str().unwrap(), "--kv", "hits", HTTP_COUNTER]);
    assert_eq!(get(&server.url("/")), (200, "hits: 4\n".to_string()), "state survives a restart");
    drop(server);
    let server = Served::start(&[HTTP_COUNTER]);
    assert_eq!(get(&server.url("/")), (500, "error: access-denied\n".to_string()));
}

#[test]
fn buckets_are_granted_one_by_one() {
    let kv = Kv::memory();
    // Not granted: access-denied, whether or not it exists.
    let out = run(kv.cmd("b", KV_STORE, &["get", "other", "k"])).expect_code(1);
    assert_eq!(out.stdout, "error: access-denied\n");
    let out = run(wharf(&["run", KV_STORE, "get", "b", "k"])).expect_code(1);
    assert_eq!(out.stdout, "error: access-denied\n");
    // Buckets on one store have separate key spaces.
    run(kv.cmd("b", KV_STORE, &["set", "b", "k", "in b"])).expect_code(0);
    let redb = Kv::redb();
    run(redb.cmd("one", KV_STORE, &["set", "one", "k", "1"])).expect_code(0);
    let out = run(redb.cmd("two", KV_STORE, &["get", "two", "k"])).expect_code(0);
    assert_eq!(out.stdout, "<none>\n");
    // A bucket mapped to a store that is not configured is bad input, before anything runs.
    let out = run(kv.cmd("b=nowhere", KV_STORE, &["get", "b", "k"])).expect_code(2);
    assert_one_clean_error(&out, "no store named `nowhere` is configured (known: default)");
    let out = run(kv.cmd("b c", KV_STORE, &["get", "b", "k"])).expect_code(2);
    assert_one_clean_error(&out, "invalid kv `b c`");
}

#[test]
fn values_persist_across_runs_in_the_default_store() {
    let data = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut all = vec!["run", "--kv", "notes", KV_STORE];
        all.extend(args);
        let mut cmd = wharf(&all);
        cmd.env("WHARF_DATA_DIR", data.path());
        cmd
    };
    run(cmd(&["set", "notes", "greeting", "hello from run 1"])).expect_code(0);
    let out = run(cmd(&["get", "notes", "greeting"])).expect_code(0);
    assert_eq!(out.stdout, "hello from run 1\n");
    assert!(data.path().join("keyvalue/default.redb").is_file());
}

/// Starts `n` `wharf run` processes at once and checks they all succeed.
fn concurrently(kv: &Kv, n: usize, args: &[&str]) -> Vec<String> {
    let children: Vec<_> = (0..n)
        .map(|_| kv.cmd("b", KV_STORE, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
            stdout
        })
        .collect()
}

fn concurrent_counters(kv: &Kv) {
    concurrently(kv, 8, &["incr", "b", "hits", "1000"]);
    assert_eq!(kv.get("hits"), "8000");
    let retries: u64 =
        concurrently(kv, 8, &["cas", "b", "cas-hits", "100"]).iter().map(|r| r.trim().parse::<u64>().unwrap()).sum();
    assert_eq!(kv.get("cas-hits"), "800", "after {retries} CAS retries");
}

#[test]
fn eight_processes_count_exactly_on_redb() {
    concurrent_counters(&Kv::redb());
}

#[test]
fn eight_processes_count_exactly_on_redis() {
    let redis = RedisServer::start();
    concurrent_counters(&Kv::redis(&redis));
}

#[test]
fn sigkill_mid_write_leaves_redb_consistent() {
    let kv = Kv::redb();
    for round in 0..3 {
        let mut child = kv.cmd("b", KV_STORE, &["pairs", "b", "100000000"]).stdout(Stdio::null()).spawn().unwrap();
        // Kill once writes are flowing (the file exists and has grown), at a different moment each round.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(kv.redb_path()).map_or(true, |m| m.len() == 0) {
            assert!(Instant::now() < deadline, "no writes");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check_pairs(&kv.redb_path());
        let (x, y) = (kv.get("x"), kv.get("y"));
        assert_eq!(x, y, "round {round}");
        assert!(x.parse::<u64>().is_ok(), "round {round}: {x}");
    }
}

/// Opens the file with redb itself: it must open (repairing if needed), pass its integrity
/// check, and hold `x == y`, which every transaction wrote together.
fn check_pairs(path: &Path) {
    use redb::{ReadableDatabase, TableDefinition};
    let mut db = redb::Database::create(path).expect("redb file must open after SIGKILL");
    assert!(db.check_integrity().unwrap(), "integrity check");
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TableDefinition::<&str, &[u8]>::new("bucket:b")).unwrap();
    let x = table.get("x").unwrap().map(|v| v.value().to_vec());
    let y = table.get("y").unwrap().map(|v| v.value().to_vec());
    assert_eq!(x, y);
}

#[test]
fn redis_down_is_an_error_for_the_guest_not_a_crash() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let kv = Kv::new(&format!("type = \"redis\"\nurl = \"{url}\""));
    let out = kv.run(KV_STORE, &["get", "b", "k"]).expect_code(1);
    assert!(out.stdout.starts_with("error: other(redis store `default`: "), "{out:?}");
    assert!(!out.stdout.contains(&port.to_string()), "the guest does not learn the URL: {out:?}");
    assert!(out.stdout.to_lowercase().contains("refused"), "{out:?}");
    // wharf itself says which store and URL failed, on stderr, without panicking.
    assert!(out.stderr.contains("key-value store unavailable") && out.stderr.contains(&url), "{out:?}");
    assert!(out.stderr.contains("default"), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn keyvalue_limits_hold_on_every_backend() {
    let redis = RedisServer::start();
    let expected = "set 256-byte key: ok
set 257-byte key: other(a key is 257 bytes, more than the limit of 256)
get 257-byte key: other(a key is 257 bytes, more than the limit of 256)
set 1 MiB value: ok
set 1 MiB + 1 value: other(a value is 1048577 bytes, more than the limit of 1048576)
set-many 1 MiB + 1 value: other(a value is 1048577 bytes, more than the limit of 1048576)
increment 257-byte key: other(a key is 257 bytes, more than the limit of 256)
swap 1 MiB + 1 value: other(a value is 1048577 bytes, more than the limit of 1048576)
stored value: 1048576 bytes
";
    for (name, kv) in every_backend(&redis) {
        let out = kv.run(KV_STORE, &["limits", "b"]);
        assert_eq!((out.code, out.stdout.as_str()), (0, expected), "{name}: {}", out.stderr);
        // The old draft's list-keys pages with its numeric cursor (before: one answer holding
        // every key of the bucket, gathered in host memory).
        let out = run(kv.cmd("l", KV_DRAFT, &["l", "list", "2500"])).expect_code(0);
        assert_eq!(out.stdout, "2500 keys in 3 pages\n", "{name}");
    }
    // Past 10,000 keys, pages in the backend's order, only the page in memory.
    let kv = Kv::memory();
    let out = run(kv.cmd("l", KV_DRAFT, &["l", "list", "12500"])).expect_code(0);
    assert_eq!(out.stdout, "12500 keys in 13 pages\n");

    // The memory store has a quota (64 MiB by default; 1 MiB here): 15 values of 64 KiB fit.
    let kv = Kv::new("type = \"memory\"\nquota = 1048576");
    let out = kv.run(KV_STORE, &["fill", "b"]).expect_code(0);
    assert_eq!(out.stdout, "stored 15, then: other(the memory store is full (its quota is 1048576 bytes))\n");
}
