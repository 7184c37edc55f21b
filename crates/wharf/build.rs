//! Release builds on Linux: compress the debug info that stays in the binary (the line programs
//! and the skeletons of the units whose rest is in `wharf.dwp`), about a third of its size
//! uncompressed. std's backtrace decompresses it when a panic prints one. Debug builds are
//! left as they are: compressing would add link time to every test build.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
