//! Writes a 2 MiB pseudo-random blob that `cli_big` embeds, so the compile-cache test has a
//! component of realistic size without checking a binary into the repository.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let blob: Vec<u8> = (0..2 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(out.join("blob.bin"), blob).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
