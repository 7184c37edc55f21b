//! A ~2 MiB component (embeds a blob) for compile-cache tests. Prints one byte of the blob.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/blob.bin"));

fn main() {
    let index: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let blob = std::hint::black_box(BLOB);
    println!("blob[{index}] = {}", blob[index % blob.len()]);
}
