//! Compiles every guest in `crates/test-programs/src/bin` for wasm32-wasip2 and generates
//! `artifacts.rs`: one path constant per guest plus a `foreach_guest!` macro, so tests always
//! run fresh guests and a guest without a test is a compile error (see wasmtime's
//! `crates/test-programs/artifacts`).
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let programs = manifest_dir.join("../test-programs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir.join("guests");

    println!("cargo:rerun-if-changed={}", programs.join("src").display());
    println!("cargo:rerun-if-changed={}", programs.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", programs.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", programs.join("build.rs").display());
    println!("cargo:rerun-if-changed={}", programs.join("wit").display());

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(programs.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The host build's flags (coverage, sanitizers) must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("failed to spawn cargo for the guest programs");
    assert!(status.success(), "building guest programs failed; is the target installed? `rustup target add {TARGET}`");

    let wasm_dir = target_dir.join(TARGET).join("release");
    let mut names = guest_names(&programs.join("src/bin"));
    names.sort();
    let mut generated = String::new();
    for name in &names {
        let path = wasm_dir.join(format!("{name}.wasm"));
        assert!(path.exists(), "guest {name} was not built at {}", path.display());
        generated += &format!(
            "/// Path of the compiled `{name}` guest component.\npub const {}: &str = {:?};\n",
            name.to_uppercase(),
            path.display().to_string()
        );
    }
    generated += "/// Calls `$mac!(guest_name)` once for every guest program.\n#[macro_export]\nmacro_rules! foreach_guest {\n    ($mac:ident) => {\n";
    for name in &names {
        generated += &format!("        $mac!({name});\n");
    }
    generated += "    };\n}\n";
    std::fs::write(out_dir.join("artifacts.rs"), generated).unwrap();
}

fn guest_names(bin_dir: &Path) -> Vec<String> {
    std::fs::read_dir(bin_dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect()
}
