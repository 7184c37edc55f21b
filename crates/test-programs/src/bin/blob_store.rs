//! A `wasi:blobstore@0.2.0-draft` guest. Subcommands (each prints `ok` or exits 1 with the
//! error):
//! - `all C1 C2`: every function, on containers C1 and C2;
//! - `big C MIB [W R]`: writes a MIB MiB object through the body stream in W-byte writes (default
//!   65536), reads it back as a stream in R-byte reads (default 65536), checking every byte;
//! - `write C NAME BYTE KIB N` / `read C NAME N`: N whole-value writes of KIB KiB of BYTE, or N
//!   reads that check each value is one byte repeated (torn values fail);
//! - `escape C`: every name that tries to leave the container is refused;
//! - `names C`: odd but valid names (`%2F`, `?`, `#`, spaces, non-ASCII, ...) round-trip exactly;
//! - `list C`: lists C (prints the count);
//! - `bench C MIB`: writes (256 KiB writes) then reads (1 MiB reads) a MIB MiB object, prints
//!   `write-ms N read-ms N`;
//! - `get C`: `get-container` (prints the error if any);
//! - `stall C MIB`: writes MIB MiB to a value of C, never finishes it, and spins (until the
//!   host's timeout ends the run with the value still being written).
use wasi::blobstore::blobstore;
use wasi::blobstore::container::Container;
use wasi::blobstore::types::{IncomingValue, ObjectId, OutgoingValue};

wit_bindgen::generate!({
    path: "../wharf-blobstore/wit",
    world: "wasi:blobstore/imports",
    generate_all,
});

fn ok<T>(what: &str, result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| {
        println!("error: {what}: {e}");
        std::process::exit(1)
    })
}

fn check(what: &str, cond: bool) {
    if !cond {
        println!("error: check failed: {what}");
        std::process::exit(1)
    }
}

/// Writes all of `data` as the host allows (`check-write`, `write`, waiting when full).
fn write_all(body: &wasi::io::streams::OutputStream, mut data: &[u8]) {
    while !data.is_empty() {
        let n = body.check_write().unwrap_or_else(|e| {
            println!("error: check-write: {e:?}");
            std::process::exit(1)
        });
        if n == 0 {
            body.subscribe().block();
            continue;
        }
        let k = data.len().min(n as usize);
        body.write(&data[..k]).expect("stream write");
        data = &data[k..];
    }
}

fn put(c: &Container, name: &str, data: &[u8]) {
    let value = OutgoingValue::new_outgoing_value();
    let body = value.outgoing_value_write_body().expect("write-body");
    write_all(&body, data);
    drop(body);
    ok("write-data", c.write_data(name, &value));
    ok("finish", OutgoingValue::finish(value));
}

fn get(c: &Container, name: &str, start: u64, end: u64) -> Vec<u8> {
    let value = ok("get-data", c.get_data(name, start, end));
    ok("consume-sync", IncomingValue::incoming_value_consume_sync(value))
}

fn get_stream(c: &Container, name: &str) -> Vec<u8> {
    let value = ok("get-data", c.get_data(name, 0, u64::MAX));
    let stream = ok("consume-async", IncomingValue::incoming_value_consume_async(value));
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(bytes) => out.extend(bytes),
            Err(wasi::io::streams::StreamError::Closed) => return out,
            Err(e) => ok("read", Err(format!("{e:?}"))),
        }
    }
}

fn names(c: &Container, page: u64) -> Vec<String> {
    let stream = ok("list-objects", c.list_objects());
    let mut all = Vec::new();
    loop {
        let (names, end) = ok("read-stream-object-names", stream.read_stream_object_names(page));
        check("page size", names.len() as u64 <= page);
        all.extend(names);
        if end {
            return all;
        }
    }
}

fn all(c1: &str, c2: &str) {
    let _ = blobstore::delete_container(c1);
    let _ = blobstore::delete_container(c2);
    check("c1 absent", !ok("container-exists", blobstore::container_exists(c1)));
    check("get missing fails", blobstore::get_container(c1).is_err());
    let c = ok("create-container", blobstore::create_container(c1));
    check("c1 exists", ok("container-exists", blobstore::container_exists(c1)));
    check("name", ok("name", c.name()) == c1);
    check("info name", ok("info", c.info()).name == c1);
    let d = ok("create-container", blobstore::create_container(c2));

    put(&c, "hello.txt", b"hello, blobstore");
    check("has-object", ok("has-object", c.has_object("hello.txt")));
    check("has-object missing", !ok("has-object", c.has_object("nope")));
    let info = ok("object-info", c.object_info("hello.txt"));
    check("object-info", info.size == 16 && info.name == "hello.txt" && info.container == c1 && info.created_at > 0);
    check("whole", get(&c, "hello.txt", 0, u64::MAX) == b"hello, blobstore");
    check("range inclusive", get(&c, "hello.txt", 7, 10) == b"blob");
    check("range past end", get(&c, "hello.txt", 12, 1000) == b"tore");
    check("stream", get_stream(&c, "hello.txt") == b"hello, blobstore");
    let v = ok("get-data", c.get_data("hello.txt", 0, 4));
    check("size", v.size() == 5);
    drop(v);
    check("get missing object fails", c.get_data("nope", 0, 10).is_err());
    check("object-info missing fails", c.object_info("nope").is_err());
    check("start after end fails", c.get_data("hello.txt", 5, 2).is_err());

    // Replace, empty value, nested-looking names.
    put(&c, "hello.txt", b"bye");
    check("replaced", get(&c, "hello.txt", 0, u64::MAX) == b"bye");
    put(&c, "empty", b"");
    check("empty", get(&c, "empty", 0, u64::MAX).is_empty());
    put(&c, "dir/a.txt", b"a");

    // Listing, in pages of 2 and skipping.
    for i in 0..5 {
        put(&c, &format!("n{i}"), &[i]);
    }
    let mut listed = names(&c, 2);
    listed.sort();
    check("list", listed == ["dir/a.txt", "empty", "hello.txt", "n0", "n1", "n2", "n3", "n4"]);
    let stream = ok("list-objects", c.list_objects());
    let (skipped, end) = ok("skip", stream.skip_stream_object_names(3));
    check("skip 3", skipped == 3 && !end);
    let (rest, end) = ok("read rest", stream.read_stream_object_names(100));
    check("rest", rest.len() == 5 && end);
    let (more, end) = ok("read after end", stream.read_stream_object_names(100));
    check("after end", more.is_empty() && end);

    // Copy and move, within a container and across.
    let id = |container: &str, object: &str| ObjectId { container: container.into(), object: object.into() };
    ok("copy", blobstore::copy_object(&id(c1, "n1"), &id(c2, "copied")));
    check("copied", get(&d, "copied", 0, u64::MAX) == [1] && ok("has", c.has_object("n1")));
    ok("move", blobstore::move_object(&id(c1, "n2"), &id(c1, "moved")));
    check("moved", get(&c, "moved", 0, u64::MAX) == [2] && !ok("has", c.has_object("n2")));
    ok("move across", blobstore::move_object(&id(c1, "n3"), &id(c2, "n3")));
    check("moved across", get(&d, "n3", 0, u64::MAX) == [3] && !ok("has", c.has_object("n3")));
    ok("copy over", blobstore::copy_object(&id(c1, "n0"), &id(c1, "moved")));
    check("copy replaced", get(&c, "moved", 0, u64::MAX) == [0]);
    check("copy missing fails", blobstore::copy_object(&id(c1, "nope"), &id(c1, "x")).is_err());

    // Deletes.
    ok("delete-object", c.delete_object("n4"));
    ok("delete missing is ok", c.delete_object("n4"));
    check("deleted", !ok("has", c.has_object("n4")));
    ok("delete-objects", c.delete_objects(&["n0".to_string(), "moved".to_string()]));
    check("deleted many", !ok("has", c.has_object("n0")) && !ok("has", c.has_object("moved")));
    ok("clear", d.clear());
    check("cleared", names(&d, 10).is_empty());

    // An unfinished value writes nothing; finish without write-data fails.
    let value = OutgoingValue::new_outgoing_value();
    let body = value.outgoing_value_write_body().expect("write-body");
    check("body once", value.outgoing_value_write_body().is_err());
    body.blocking_write_and_flush(b"never").expect("write");
    drop(body);
    ok("write-data", c.write_data("unfinished", &value));
    drop(value);
    check("unfinished not written", !ok("has", c.has_object("unfinished")));
    check("finish without write-data fails", OutgoingValue::finish(OutgoingValue::new_outgoing_value()).is_err());

    drop((c, d));
    ok("delete-container", blobstore::delete_container(c1));
    check("c1 gone", !ok("exists", blobstore::container_exists(c1)));
    ok("delete-container", blobstore::delete_container(c2));
    println!("ok");
}

/// Byte `i` of the big object: cheap, position-dependent, so a misplaced chunk is caught.
fn pattern(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16) ^ (i >> 24)) as u8
}

fn big(c: &str, mib: u64, write: usize, read: u64) {
    let c = ok("create-container", blobstore::create_container(c));
    let size = mib * 1024 * 1024;
    let value = OutgoingValue::new_outgoing_value();
    let body = value.outgoing_value_write_body().expect("write-body");
    let mut chunk = vec![0u8; write];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(write as u64) as usize;
        for (j, b) in chunk[..n].iter_mut().enumerate() {
            *b = pattern(at + j as u64);
        }
        write_all(&body, &chunk[..n]);
        at += n as u64;
    }
    drop(body);
    ok("write-data", c.write_data("big", &value));
    ok("finish", OutgoingValue::finish(value));
    check("size", ok("object-info", c.object_info("big")).size == size);

    let value = ok("get-data", c.get_data("big", 0, u64::MAX));
    let stream = ok("consume-async", IncomingValue::incoming_value_consume_async(value));
    let mut at = 0u64;
    loop {
        match stream.blocking_read(read) {
            Ok(bytes) => {
                check("read length", !bytes.is_empty() && bytes.len() as u64 <= read);
                for b in bytes {
                    if b != pattern(at) {
                        println!("error: byte {at} differs");
                        std::process::exit(1);
                    }
                    at += 1;
                }
            }
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => ok("read", Err(format!("{e:?}"))),
        }
    }
    check("read size", at == size);
    println!("ok");
}

fn race(args: &[String]) {
    let c = ok("create-container", blobstore::create_container(&args[1]));
    let name = &args[2];
    if args[0] == "write" {
        let byte: u8 = args[3].parse().expect("BYTE");
        let kib: usize = args[4].parse().expect("KIB");
        let n: usize = args[5].parse().expect("N");
        let data = vec![byte; kib * 1024];
        for _ in 0..n {
            put(&c, name, &data);
        }
    } else {
        let n: usize = args[3].parse().expect("N");
        let mut seen = 0;
        for _ in 0..n {
            let Ok(value) = c.get_data(name, 0, u64::MAX) else { continue };
            let data = get_stream_value(value);
            seen += 1;
            check("value not empty", !data.is_empty());
            if data.iter().any(|b| *b != data[0]) {
                println!("error: torn value of {} bytes", data.len());
                std::process::exit(1);
            }
        }
        println!("read {seen}");
    }
    println!("ok");
}

fn get_stream_value(value: IncomingValue) -> Vec<u8> {
    let stream = ok("consume-async", IncomingValue::incoming_value_consume_async(value));
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(bytes) => out.extend(bytes),
            Err(_) => return out,
        }
    }
}

fn escape(c: &str) {
    let c = ok("create-container", blobstore::create_container(c));
    let hostile =
        ["../escaped", "../../escaped", "/tmp/escaped", "a/../../escaped", "..", ".", "", "a\0b", "a//b", "./x"];
    for name in hostile {
        let value = OutgoingValue::new_outgoing_value();
        let body = value.outgoing_value_write_body().expect("write-body");
        body.blocking_write_and_flush(b"x").expect("write");
        drop(body);
        let refused = match c.write_data(name, &value) {
            Err(_) => true,
            Ok(()) => OutgoingValue::finish(value).is_err(),
        };
        check(&format!("write {name:?} refused"), refused);
        check(&format!("read {name:?} refused"), c.get_data(name, 0, 10).is_err());
        check(&format!("info {name:?} refused"), c.object_info(name).is_err());
        check(&format!("delete {name:?} refused"), c.delete_object(name).is_err());
    }
    // A symlink planted in the store (by the test, on the host) is not followed.
    if let Ok(value) = c.get_data("link", 0, u64::MAX) {
        let data = IncomingValue::incoming_value_consume_sync(value);
        check("symlink not followed", data.is_err());
    }
    println!("ok");
}

fn odd_names(c: &str) {
    let c = ok("create-container", blobstore::create_container(c));
    let odd = [
        "a%2Fb",
        "a%2E%2E",
        "sp ace",
        "q?x=1",
        "h#frag",
        "日本/語",
        "a+b",
        "x..y",
        ".hidden",
        "t~ilde",
        "quo\"te",
        "back`tick",
        "[br]",
        "{br}",
        "a/b/c",
        "a\\b",
        "*",
        "&amp;",
        "<x>",
    ];
    for (i, name) in odd.iter().enumerate() {
        put(&c, name, format!("value {i}").as_bytes());
    }
    for (i, name) in odd.iter().enumerate() {
        check(&format!("read back {name:?}"), get(&c, name, 0, u64::MAX) == format!("value {i}").as_bytes());
    }
    let mut want: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    want.sort();
    let listed = names(&c, 7);
    check(&format!("listed exactly, in order: {listed:?}"), listed == want);
    for name in odd {
        ok("delete-object", c.delete_object(name));
    }
    check("all deleted", names(&c, 100).is_empty());
    println!("ok");
}

fn bench(c: &str, mib: u64) {
    let c = ok("create-container", blobstore::create_container(c));
    let size = mib * 1024 * 1024;
    // The native peer's buffer sizes (examples/blob_native.rs): 256 KiB writes, 1 MiB reads.
    let chunk: Vec<u8> = (0..256 * 1024u64).map(pattern).collect();
    let started = std::time::Instant::now();
    let value = OutgoingValue::new_outgoing_value();
    let body = value.outgoing_value_write_body().expect("write-body");
    let mut at = 0;
    while at < size {
        write_all(&body, &chunk);
        at += chunk.len() as u64;
    }
    drop(body);
    ok("write-data", c.write_data("bench", &value));
    ok("finish", OutgoingValue::finish(value));
    let write = started.elapsed();
    let started = std::time::Instant::now();
    let value = ok("get-data", c.get_data("bench", 0, u64::MAX));
    let stream = ok("consume-async", IncomingValue::incoming_value_consume_async(value));
    let mut read = 0u64;
    loop {
        match stream.blocking_read(1 << 20) {
            Ok(bytes) => read += bytes.len() as u64,
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => ok("read", Err(format!("{e:?}"))),
        }
    }
    let elapsed = started.elapsed();
    check("read size", read == size);
    println!("write-ms {} read-ms {}", write.as_millis(), elapsed.as_millis());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("all") => all(&args[1], &args[2]),
        Some("big") => {
            let size = |i: usize| args.get(i).map_or(65536, |s| s.parse().expect("bytes"));
            big(&args[1], args[2].parse().expect("MIB"), size(3), size(4) as u64)
        }
        Some("write" | "read") => race(&args),
        Some("escape") => escape(&args[1]),
        Some("names") => odd_names(&args[1]),
        Some("list") => {
            let c = ok("get-container", blobstore::get_container(&args[1]));
            println!("listed {}", names(&c, 1000).len());
            println!("ok");
        }
        Some("bench") => bench(&args[1], args[2].parse().expect("MIB")),
        Some("get") => {
            ok("get-container", blobstore::get_container(&args[1]));
            println!("ok");
        }
        Some("stall") => {
            let c = ok("create-container", blobstore::create_container(&args[1]));
            let value = OutgoingValue::new_outgoing_value();
            let body = value.outgoing_value_write_body().expect("write-body");
            write_all(&body, &vec![7u8; args[2].parse::<usize>().expect("MIB") << 20]);
            ok("write-data", c.write_data("stalled", &value));
            println!("written");
            #[allow(clippy::empty_loop)]
            loop {}
        }
        _ => {
            println!("usage: blob_store all|big|write|read|escape|names|list|bench|get|stall ...");
            std::process::exit(2)
        }
    }
}
