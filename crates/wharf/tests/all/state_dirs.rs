//! Directory grants that reach wharf's own state. The compile cache holds native code trusted on
//! a checksum: a guest with a read-write grant over it needs no new bytes, renaming one valid
//! entry over another's name makes a later `wharf run` of the second component run the first's
//! code. The data directory holds the tags of pulled artifacts, logins and the default
//! key-value and blob stores. Read-write grants over either (or inside either) are refused.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use test_programs_artifacts::{CLI_ECHO, CLI_EXIT, CLI_FS, HTTP_ECHO, MCP_COUNTER};

use crate::util::{assert_one_clean_error, run, wharf};

/// `wharf ARGS` with its compile cache and data directory under `home`.
fn wharf_in(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = wharf(args);
    cmd.env("WHARF_CACHE_DIR", home.join("cache")).env("WHARF_DATA_DIR", home.join("data"));
    cmd
}

/// The compile-cache entry of `wasm` under `home`, relative to `home`.
fn entry(home: &Path, wasm: &str) -> PathBuf {
    let sha = hex::encode(Sha256::digest(std::fs::read(wasm).unwrap()));
    let fingerprints: Vec<_> = std::fs::read_dir(home.join("cache")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(fingerprints.len(), 1, "{fingerprints:?}");
    fingerprints[0].join(format!("{sha}.cwasm")).strip_prefix(home).unwrap().to_path_buf()
}

#[test]
fn read_write_grants_over_wharfs_state_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    std::fs::create_dir_all(home.join("data/store")).unwrap();
    run(wharf_in(home, &["run", CLI_ECHO])).expect_code(0);
    run(wharf_in(home, &["run", CLI_EXIT, "3"])).expect_code(3);
    let (echo, exit) = (entry(home, CLI_ECHO), entry(home, CLI_EXIT));
    assert!(home.join(&echo).is_file() && home.join(&exit).is_file());

    // The attack: rename cli_echo's entry over cli_exit's (its checksum stays valid).
    let grant = format!("{}::/h", home.display());
    let (from, to) = (format!("/h/{}", echo.display()), format!("/h/{}", exit.display()));
    let out = run(wharf_in(home, &["run", "--dir", &grant, CLI_FS, "rename", &from, &to])).expect_code(2);
    assert_one_clean_error(&out, "it holds wharf's compile cache");
    // cli_exit is still itself (before the fix: it printed cli_echo's greeting and exited 0).
    let out = run(wharf_in(home, &["run", CLI_EXIT, "3"])).expect_code(3);
    assert!(!out.stdout.contains("hello"), "{}", out.stdout);

    // Every way of reaching the state: the directory itself, one inside it, one holding it
    // through a symlink alias, the data directory and its store.
    std::os::unix::fs::symlink(home, home.join("../alias-state-dirs-test")).ok();
    let alias = home.parent().unwrap().join("alias-state-dirs-test");
    let cases: [(PathBuf, &str); 5] = [
        (home.join("cache"), "it holds wharf's compile cache"),
        (home.join(exit.parent().unwrap()), "it lies inside wharf's compile cache"),
        (alias.clone(), "it holds wharf's compile cache"),
        (home.join("data"), "it holds wharf's data directory"),
        (home.join("data/store"), "it lies inside wharf's data directory"),
    ];
    for (dir, needle) in &cases {
        let grant = format!("{}::/h", dir.display());
        let out = run(wharf_in(home, &["run", "--dir", &grant, CLI_FS, "list", "/h"])).expect_code(2);
        assert_one_clean_error(&out, needle);
    }
    let _ = std::fs::remove_file(&alias);

    // `serve` (a wharf.toml component) and `mcp` refuse before binding or loading.
    let manifest = home.join("wharf.toml");
    let toml = format!(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\n[component.web]\nsource = \"{HTTP_ECHO}\"\n\
         dirs = [\"{}::/h\"]\n",
        home.display()
    );
    std::fs::write(&manifest, toml).unwrap();
    let out = run(wharf_in(home, &["serve", "--listen", "127.0.0.1:0", manifest.to_str().unwrap()])).expect_code(2);
    assert!(out.stderr.contains("component web") && out.stderr.contains("compile cache"), "{}", out.stderr);
    let grant = format!("{}::/h", home.join("data").display());
    let out = run(wharf_in(home, &["mcp", "--dir", &grant, MCP_COUNTER])).expect_code(2);
    assert!(out.stderr.contains("wharf's data directory"), "{}", out.stderr);

    // Stores a runtime config keeps elsewhere: a guest granted their directory could rewrite
    // every bucket or container in them, granted or not.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = elsewhere.path().join("runtime.toml");
    std::fs::create_dir_all(elsewhere.path().join("kv")).unwrap();
    std::fs::write(
        &config,
        "[keyvalue.stores.other]\ntype = \"redb\"\npath = \"kv/other.redb\"\n\n         [blobstore.stores.files]\ntype = \"fs\"\npath = \"blobs\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (dir, needle) in [("kv", "keyvalue store `other`"), (".", "blobstore store `files`")] {
        let grant = format!("{}::/h", elsewhere.path().join(dir).display());
        let args = ["run", "--runtime-config", config, "--dir", &grant, CLI_FS, "list", "/h"];
        assert_one_clean_error(&run(wharf_in(home, &args)).expect_code(2), needle);
    }

    // Read-only grants are the operator's to give; unrelated read-write grants are untouched.
    let grant = format!("{}::/h:ro", home.display());
    let out = run(wharf_in(home, &["run", "--dir", &grant, CLI_FS, "rename", &from, &to])).expect_code(1);
    assert!(out.stdout.starts_with("error:"), "{}", out.stdout);
    let grant = format!("{}::/h", elsewhere.path().join("kv").display());
    run(wharf_in(home, &["run", "--dir", &grant, CLI_FS, "write", "/h/x", "y"])).expect_code(0);
}
