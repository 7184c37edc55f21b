//! Hostile: `KIND COUNT [BYTES]` creates COUNT host resources and never drops one (see
//! `resource_bomb.rs`: `pollables`, `fields`, `bodies`), printing progress every 10,000.
#[path = "../resource_bomb.rs"]
mod resource_bomb;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).and_then(|k| resource_bomb::Kind::parse(k)).expect("usage: KIND COUNT [BYTES]");
    let count = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let bytes = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
    match resource_bomb::hoard(kind, count, bytes, |i| println!("created {i}")) {
        Ok(n) => println!("done: {n} {kind:?} held"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
