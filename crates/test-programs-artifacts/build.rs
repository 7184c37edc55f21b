//! Compiles every guest in `crates/test-programs/src/bin` for wasm32-wasip2 and generates
//! `artifacts.rs`: one path constant per guest plus a `foreach_guest!` macro, so tests always
//! run fresh guests and a guest without a test is a compile error (see wasmtime's
//! `crates/test-programs/artifacts`).
//!
//! rustc and wasm-component-ld drop WIT doc comments, so the guests in `DOCUMENTED` get them
//! back the way Wassette's `wit-docs-inject` does: a top-level `package-docs` custom section
//! (wit-parser's `PackageMetadata` of the `wharf:guests` package) appended to a copy of the
//! component, and their constant points at that copy.
use std::path::{Path, PathBuf};
use std::process::Command;

use wit_parser::{PackageMetadata, Resolve};

const TARGET: &str = "wasm32-wasip2";

/// Guests whose component gets the `package-docs` section of `crates/test-programs/wit`.
const DOCUMENTED: &[&str] = &["mcp_docs"];

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
    let docs = package_docs(&programs.join("wit"));
    let documented_dir = out_dir.join("documented");
    std::fs::create_dir_all(&documented_dir).unwrap();
    let mut generated = String::new();
    for name in &names {
        let mut path = wasm_dir.join(format!("{name}.wasm"));
        assert!(path.exists(), "guest {name} was not built at {}", path.display());
        if DOCUMENTED.contains(&name.as_str()) {
            let mut bytes = std::fs::read(&path).unwrap();
            append_custom_section(&mut bytes, PackageMetadata::SECTION_NAME, &docs);
            path = documented_dir.join(format!("{name}.wasm"));
            std::fs::write(&path, bytes).unwrap();
        }
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

/// The `package-docs` payload (version byte + JSON) of the package in the WIT directory `wit`.
fn package_docs(wit: &Path) -> Vec<u8> {
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(wit).unwrap_or_else(|e| panic!("parsing {}: {e:?}", wit.display()));
    let docs = PackageMetadata::extract(&resolve, package).encode().expect("encoding package-docs");
    PackageMetadata::decode(&docs).expect("package-docs must decode");
    docs
}

/// Appends a custom section (id 0, size, name, data) to a module or component binary.
fn append_custom_section(wasm: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut payload = Vec::new();
    leb128_u32(&mut payload, name.len());
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    wasm.push(0);
    leb128_u32(wasm, payload.len());
    wasm.extend_from_slice(&payload);
}

fn leb128_u32(out: &mut Vec<u8>, value: usize) {
    let mut value = u32::try_from(value).expect("custom section larger than 4 GiB");
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
