//! A guest built against the older `wasi:keyvalue@0.2.0-draft` (u64 increment, numeric cursor,
//! no CAS). `kv_draft BUCKET`: checks every function and prints `ok`. `kv_draft BUCKET list N`:
//! writes N keys, then lists them following the numeric cursor; prints the keys and pages.
use wasi::keyvalue::store::{self, Error};
use wasi::keyvalue::{atomics, batch};

wit_bindgen::generate!({
    path: "../wharf-keyvalue/wit/draft",
    world: "wasi:keyvalue/imports",
    generate_all,
});

fn ok<T>(result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| {
        println!("error: {e:?}");
        std::process::exit(1)
    })
}

fn main() {
    let name = std::env::args().nth(1).expect("BUCKET");
    let bucket = ok(store::open(&name));
    if let Some(n) = std::env::args().nth(3) {
        let keys: Vec<(String, Vec<u8>)> = (0..n.parse().expect("N")).map(|i| (format!("k{i:06}"), vec![1])).collect();
        ok(batch::set_many(&bucket, &keys));
        let (mut listed, mut pages, mut cursor) = (Vec::new(), 0, None);
        loop {
            let page = ok(bucket.list_keys(cursor));
            pages += 1;
            listed.extend(page.keys);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        let expected: Vec<String> = keys.into_iter().map(|(k, _)| k).collect();
        assert_eq!(listed.len(), expected.len(), "every key once");
        listed.sort();
        assert_eq!(listed, expected);
        println!("{} keys in {pages} pages", listed.len());
        return;
    }
    ok(bucket.set("a", b"1"));
    assert_eq!(ok(bucket.get("a")), Some(b"1".to_vec()));
    assert!(ok(bucket.exists("a")));
    ok(bucket.delete("a"));
    assert!(!ok(bucket.exists("a")));

    assert_eq!(ok(atomics::increment(&bucket, "n", 3)), 3);
    assert_eq!(ok(atomics::increment(&bucket, "n", 4)), 7);

    ok(batch::set_many(&bucket, &[("b".into(), b"2".to_vec()), ("c".into(), b"3".to_vec())]));
    let got = ok(batch::get_many(&bucket, &["b".into(), "zz".into(), "c".into()]));
    assert_eq!(got, vec![Some(("b".into(), b"2".to_vec())), None, Some(("c".into(), b"3".to_vec()))]);
    let all = ok(bucket.list_keys(None));
    assert_eq!(all.keys, ["b", "c", "n"]);
    assert_eq!(all.cursor, None);
    assert_eq!(ok(bucket.list_keys(Some(2))).keys, ["n"]);
    ok(batch::delete_many(&bucket, &["b".into(), "c".into(), "n".into()]));
    assert!(ok(bucket.list_keys(None)).keys.is_empty());
    println!("ok");
}
