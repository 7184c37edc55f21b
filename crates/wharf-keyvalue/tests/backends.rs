//! The same checks on every embedded backend, straight through the [`Backend`] trait (the
//! guest-level tests in `crates/wharf/tests/all/keyvalue.rs` also cover Redis).
use std::sync::Arc;

use wharf_keyvalue::{Backend, LIST_PAGE_SIZE, MemoryStore, RedbStore, StoreConfig, Stores};

async fn conformance(store: Arc<dyn Backend>) {
    let s = store.as_ref();
    assert_eq!(s.get("b", "k").await.unwrap(), None);
    s.set("b", "k", b"v").await.unwrap();
    assert_eq!(s.get("b", "k").await.unwrap(), Some(b"v".to_vec()));
    assert!(s.exists("b", "k").await.unwrap());
    // Buckets are separate key spaces.
    assert_eq!(s.get("other", "k").await.unwrap(), None);
    s.delete("b", "k").await.unwrap();
    s.delete("b", "k").await.unwrap();
    assert!(!s.exists("b", "k").await.unwrap());

    // Pagination: every key exactly once, pages no larger than LIST_PAGE_SIZE.
    let keys: Vec<String> = (0..2 * LIST_PAGE_SIZE + 7).map(|i| format!("{i:04}")).collect();
    let pairs: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), vec![1])).collect();
    s.set_many("p", &pairs).await.unwrap();
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = s.list_keys("p", cursor.as_deref()).await.unwrap();
        assert!(page.keys.len() <= LIST_PAGE_SIZE);
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, keys);
    assert_eq!(s.list_keys("empty", None).await.unwrap().keys, Vec::<String>::new());
    let got = s.get_many("p", &["0000".into(), "nope".into()]).await.unwrap();
    assert_eq!(got, vec![Some(vec![1]), None]);
    s.delete_many("p", &keys).await.unwrap();
    assert!(s.list_keys("p", None).await.unwrap().keys.is_empty());

    // Counters are decimal text; overflow and non-integers are errors, not wraps.
    assert_eq!(s.increment("b", "n", 41).await.unwrap(), 41);
    assert_eq!(s.increment("b", "n", 1).await.unwrap(), 42);
    assert_eq!(s.get("b", "n").await.unwrap(), Some(b"42".to_vec()));
    s.set("b", "max", i64::MAX.to_string().as_bytes()).await.unwrap();
    assert!(s.increment("b", "max", 1).await.unwrap_err().0.contains("overflow"));
    assert_eq!(s.get("b", "max").await.unwrap(), Some(i64::MAX.to_string().into_bytes()));
    s.set("b", "t", b"text").await.unwrap();
    assert!(s.increment("b", "t", 1).await.is_err());

    // Compare-and-swap on values, including absence.
    assert!(s.compare_and_swap("b", "c", None, b"1").await.unwrap());
    assert!(!s.compare_and_swap("b", "c", None, b"2").await.unwrap());
    assert!(!s.compare_and_swap("b", "c", Some(b"0"), b"2").await.unwrap());
    assert!(s.compare_and_swap("b", "c", Some(b"1"), b"2").await.unwrap());
    assert_eq!(s.get("b", "c").await.unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn memory() {
    conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::new("test", dir.path().join("nested/dir/kv.redb")));
    conformance(store.clone()).await;
    assert!(store.path().is_file());
}

#[tokio::test]
async fn eight_concurrent_incrementers_in_one_process_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> = Arc::new(RedbStore::new("test", dir.path().join("kv.redb")));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    store.increment("b", "n", 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get("b", "n").await.unwrap(), Some(b"800".to_vec()));
}

/// redb reads run on the calling thread (no hop to the blocking pool) unless a write of this
/// process is in flight; then they queue behind it on the pool, so a read never waits for a
/// commit's fsync on an async worker.
#[test]
fn redb_reads_skip_the_blocking_pool_unless_a_write_is_in_flight() {
    use std::time::Duration;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(1).build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::new("test", dir.path().join("kv.redb")));
        store.set("b", "k", b"v").await.unwrap();
        // The pool's one thread is busy until `release` is sent.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || held.recv_timeout(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let quick = Duration::from_secs(2);
        assert_eq!(tokio::time::timeout(quick, store.get("b", "k")).await.unwrap().unwrap(), Some(b"v".to_vec()));
        assert!(tokio::time::timeout(quick, store.exists("b", "k")).await.unwrap().unwrap());

        // A write queued behind the blocker: reads now take the pool too, and wait.
        let writer = tokio::spawn({
            let store = store.clone();
            async move { store.set("b", "k", b"w").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::time::timeout(Duration::from_millis(200), store.get("b", "k")).await.is_err());
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(tokio::time::timeout(quick, store.get("b", "k")).await.unwrap().unwrap(), Some(b"w".to_vec()));
    });
}

#[test]
fn stores_from_config() {
    let configs = toml::from_str::<std::collections::BTreeMap<String, StoreConfig>>(
        r#"
        scratch = { type = "memory" }
        shared = { type = "redis", url = "redis://user:secret@127.0.0.1:1/0" }
        "#,
    )
    .unwrap();
    let stores = Stores::new(&configs, "/tmp/unused.redb".into()).unwrap();
    assert_eq!(stores.names().collect::<Vec<_>>(), ["default", "scratch", "shared"]);
    let err = toml::from_str::<StoreConfig>("type = \"redis\"\nurl = \"x\"\nport = 1").unwrap_err();
    assert!(err.to_string().contains("unknown field `port`"), "{err}");
    let err = toml::from_str::<StoreConfig>("type = \"sqlite\"").unwrap_err();
    assert!(err.to_string().contains("unknown variant `sqlite`"), "{err}");
    assert!(StoreConfig::Redis { url: "not a url".into() }.build("bad").is_err());
}
