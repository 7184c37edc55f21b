//! A `wasi:keyvalue@0.2.0-draft2` guest. `kv_store COMMAND BUCKET [ARGS]`:
//! - `all BUCKET`: every function of store, atomics and batch, checked; prints `ok`.
//! - `incr BUCKET KEY N`: N increments by 1; prints the last value returned.
//! - `cas BUCKET KEY N`: N compare-and-swap increments with retry; prints the retries.
//! - `get BUCKET KEY`, `set BUCKET KEY VALUE`: one call; `get` prints the value or `<none>`.
//! - `pairs BUCKET N`: N times `set-many [x=i, y=i]` (one transaction on redb); prints `done`.
//! - `bench BUCKET N`: times N increments, N sets and N gets; prints ops/s for each.
//! - `limits BUCKET`: keys of 256 and 257 bytes, values of 1 MiB and 1 MiB + 1, through `set`,
//!   `set-many`, CAS `swap` and `increment`; prints one line per attempt (`ok` or the error).
//! - `fill BUCKET`: sets 64 KiB values under new keys until the store refuses one; prints how
//!   many were stored and the error.
//!
//! Any store error is printed as `error: VARIANT` on stdout and exits with 1.
use std::process::exit;
use std::time::Instant;

use wasi::keyvalue::atomics::{self, Cas, CasError};
use wasi::keyvalue::batch;
use wasi::keyvalue::store::{self, Bucket, Error};

wit_bindgen::generate!({
    path: "../wharf-keyvalue/wit/draft2",
    world: "wasi:keyvalue/imports",
    generate_all,
});

fn fail(e: Error) -> ! {
    match e {
        Error::NoSuchStore => println!("error: no-such-store"),
        Error::AccessDenied => println!("error: access-denied"),
        Error::Other(message) => println!("error: other({message})"),
    }
    exit(1)
}

fn describe(e: Error) -> String {
    match e {
        Error::NoSuchStore => "no-such-store".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::Other(message) => format!("other({message})"),
    }
}

/// Tries the key and value limits every way a value gets in; prints each outcome.
fn limits(bucket: &Bucket) {
    let show = |what: &str, result: Result<(), Error>| {
        println!("{what}: {}", result.map_or_else(describe, |()| "ok".into()));
    };
    let (key, long_key) = ("k".repeat(256), "k".repeat(257));
    let (value, big_value) = (vec![1u8; 1 << 20], vec![1u8; (1 << 20) + 1]);
    show("set 256-byte key", bucket.set(&key, b"v"));
    show("set 257-byte key", bucket.set(&long_key, b"v"));
    show("get 257-byte key", bucket.get(&long_key).map(drop));
    show("set 1 MiB value", bucket.set("v", &value));
    show("set 1 MiB + 1 value", bucket.set("v", &big_value));
    show("set-many 1 MiB + 1 value", batch::set_many(bucket, &[("w".into(), big_value.clone())]));
    show("increment 257-byte key", atomics::increment(bucket, &long_key, 1).map(drop));
    let swap = Cas::new(bucket, "v").map(|cas| match atomics::swap(cas, &big_value) {
        Err(CasError::StoreError(e)) => Err(e),
        Err(CasError::CasFailed(_)) => Err(Error::Other("cas-failed".into())),
        Ok(()) => Ok(()),
    });
    show("swap 1 MiB + 1 value", swap.and_then(|r| r));
    let stored = bucket.get("v").map(|v| v.map_or(0, |v| v.len()));
    println!("stored value: {} bytes", stored.unwrap_or_else(|e| fail(e)));
}

fn ok<T>(result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| fail(e))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let n = || arg(4).parse::<u64>().expect("N");
    let bucket = ok(store::open(arg(2)));
    match arg(1) {
        "all" => all(&bucket),
        "incr" => {
            let mut last = 0;
            for _ in 0..n() {
                last = ok(atomics::increment(&bucket, arg(3), 1));
            }
            println!("{last}");
        }
        "cas" => println!("{}", cas_increments(&bucket, arg(3), n())),
        "get" => match ok(bucket.get(arg(3))) {
            Some(value) => println!("{}", String::from_utf8_lossy(&value)),
            None => println!("<none>"),
        },
        "set" => ok(bucket.set(arg(3), arg(4).as_bytes())),
        "pairs" => {
            let count = arg(3).parse::<u64>().expect("N");
            for i in 0..count {
                let value = i.to_string().into_bytes();
                ok(batch::set_many(&bucket, &[("x".to_string(), value.clone()), ("y".to_string(), value)]));
            }
            println!("done");
        }
        "bench" => bench(&bucket, arg(3).parse().expect("N")),
        "limits" => limits(&bucket),
        "fill" => {
            let mut stored = 0;
            let error = loop {
                if let Err(e) = bucket.set(&format!("fill-{stored}"), &vec![7u8; 64 * 1024]) {
                    break e;
                }
                stored += 1;
            };
            println!("stored {stored}, then: {}", describe(error));
        }
        other => panic!("unknown command {other}"),
    }
}

/// Adds 1 to the decimal counter at `key` `n` times with CAS, retrying on `cas-failed`.
fn cas_increments(bucket: &Bucket, key: &str, n: u64) -> u64 {
    let mut retries = 0;
    for _ in 0..n {
        let mut cas = ok(Cas::new(bucket, key));
        loop {
            let current = ok(cas.current()).map_or(0, |v| String::from_utf8(v).unwrap().parse::<u64>().unwrap());
            match atomics::swap(cas, (current + 1).to_string().as_bytes()) {
                Ok(()) => break,
                Err(CasError::CasFailed(fresh)) => {
                    retries += 1;
                    cas = fresh;
                }
                Err(CasError::StoreError(e)) => fail(e),
            }
        }
    }
    retries
}

fn all(bucket: &Bucket) {
    // store: get/set/exists/delete
    assert_eq!(ok(bucket.get("missing")), None);
    assert!(!ok(bucket.exists("k")));
    ok(bucket.set("k", b"v1"));
    assert!(ok(bucket.exists("k")));
    assert_eq!(ok(bucket.get("k")), Some(b"v1".to_vec()));
    ok(bucket.set("k", b"\x00binary\xff"));
    assert_eq!(ok(bucket.get("k")), Some(b"\x00binary\xff".to_vec()));
    ok(bucket.delete("k"));
    ok(bucket.delete("k"));
    assert!(!ok(bucket.exists("k")));

    // list-keys with pagination: 250 keys come back exactly once across pages.
    let keys: Vec<String> = (0..250).map(|i| format!("key-{i:03}")).collect();
    let pairs: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
    batch::set_many(bucket, &pairs).unwrap_or_else(|e| fail(e));
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ok(bucket.list_keys(cursor.as_deref()));
        pages += 1;
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, keys);
    assert!(pages > 1, "250 keys should take more than one page");

    // batch
    let got = ok(batch::get_many(bucket, &["key-000".to_string(), "nope".to_string(), "key-249".to_string()]));
    assert_eq!(
        got,
        vec![
            ("key-000".to_string(), Some(b"key-000".to_vec())),
            ("nope".to_string(), None),
            ("key-249".to_string(), Some(b"key-249".to_vec())),
        ]
    );
    ok(batch::delete_many(bucket, &keys));
    assert_eq!(ok(bucket.list_keys(None)).keys, Vec::<String>::new());
    assert_eq!(ok(batch::get_many(bucket, &[])), vec![]);

    // atomics: increment
    assert_eq!(ok(atomics::increment(bucket, "n", 5)), 5);
    assert_eq!(ok(atomics::increment(bucket, "n", -7)), -2);
    assert_eq!(ok(bucket.get("n")), Some(b"-2".to_vec()));
    ok(bucket.set("text", b"hello"));
    match atomics::increment(bucket, "text", 1) {
        Err(Error::Other(message)) => assert!(message.contains("integer"), "{message}"),
        other => panic!("increment of a non-integer: {other:?}"),
    }

    // atomics: cas
    let cas = ok(Cas::new(bucket, "c"));
    assert_eq!(ok(cas.current()), None);
    atomics::swap(cas, b"first").unwrap_or_else(|_| panic!("swap on an unchanged key failed"));
    assert_eq!(ok(bucket.get("c")), Some(b"first".to_vec()));
    let stale = ok(Cas::new(bucket, "c"));
    assert_eq!(ok(stale.current()), Some(b"first".to_vec()));
    ok(bucket.set("c", b"changed"));
    match atomics::swap(stale, b"lost") {
        Err(CasError::CasFailed(fresh)) => {
            assert_eq!(ok(fresh.current()), Some(b"changed".to_vec()));
            atomics::swap(fresh, b"won").unwrap_or_else(|_| panic!("retry swap failed"));
        }
        _ => panic!("swap after a change must fail with cas-failed"),
    }
    assert_eq!(ok(bucket.get("c")), Some(b"won".to_vec()));
    // A key deleted after the handle was made also fails the swap.
    let stale = ok(Cas::new(bucket, "c"));
    ok(bucket.delete("c"));
    assert!(matches!(atomics::swap(stale, b"x"), Err(CasError::CasFailed(_))));
    assert_eq!(cas_increments(bucket, "counter", 10), 0);
    assert_eq!(ok(bucket.get("counter")), Some(b"10".to_vec()));
    ok(batch::delete_many(bucket, &["n".into(), "text".into(), "counter".into()]));
    println!("ok");
}

fn bench(bucket: &Bucket, n: u64) {
    let rate = |start: Instant| n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..n {
        ok(atomics::increment(bucket, "bench-counter", 1));
    }
    let incr = rate(start);
    let start = Instant::now();
    for i in 0..n {
        ok(bucket.set(&format!("bench-{}", i % 1000), &i.to_le_bytes()));
    }
    let set = rate(start);
    let start = Instant::now();
    for i in 0..n {
        ok(bucket.get(&format!("bench-{}", i % 1000)));
    }
    let get = rate(start);
    println!("increment {incr:.0}/s set {set:.0}/s get {get:.0}/s");
}
