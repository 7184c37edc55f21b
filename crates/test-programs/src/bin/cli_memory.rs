//! Hostile: `grow MIB` allocates (and touches) MIB mebibytes one at a time, printing progress.
fn main() {
    let mib: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let mut chunks = Vec::new();
    for i in 1..=mib {
        chunks.push(vec![1u8; 1 << 20]);
        if i % 16 == 0 {
            println!("allocated {i} MiB");
        }
    }
    println!("done: {} MiB", chunks.len());
}
