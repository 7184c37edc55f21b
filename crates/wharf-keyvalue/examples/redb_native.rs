//! Native redb doing what the `kv_store bench` guest does through wasi:keyvalue, for
//! `bench/keyvalue.sh`: N increments (read-modify-write of a decimal counter), N sets and N gets,
//! one durable transaction per write and one read transaction per get, on the same table layout.
//!
//! `cargo run --release -p wharf-keyvalue --example redb_native -- FILE N`
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket:bench");

fn main() -> Result<(), redb::Error> {
    let args: Vec<String> = std::env::args().collect();
    let (path, n) = (&args[1], args[2].parse::<u64>().expect("N"));
    let db = Database::builder().set_concurrency_mode(redb::ConcurrencyMode::MultiWriter).create(path)?;
    let rate = |start: Instant| n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for _ in 0..n {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            let current = table
                .get("bench-counter")?
                .map_or(0, |v| std::str::from_utf8(v.value()).unwrap().parse::<i64>().unwrap());
            table.insert("bench-counter", (current + 1).to_string().as_bytes())?;
        }
        txn.commit()?;
    }
    let incr = rate(start);

    let start = Instant::now();
    for i in 0..n {
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(format!("bench-{}", i % 1000).as_str(), i.to_le_bytes().as_slice())?;
        txn.commit()?;
    }
    let set = rate(start);

    let start = Instant::now();
    for i in 0..n {
        let txn = db.begin_read()?;
        let value = txn.open_table(TABLE)?.get(format!("bench-{}", i % 1000).as_str())?.map(|v| v.value().to_vec());
        std::hint::black_box(value);
    }
    let get = rate(start);
    println!("increment {incr:.0}/s set {set:.0}/s get {get:.0}/s");
    Ok(())
}
