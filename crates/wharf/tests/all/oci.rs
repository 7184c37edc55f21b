//! OCI artifacts against a real registry (Debian's `docker-registry`) and a real peer tool
//! (`skopeo`): push, pull, inspect, run REF, auth, interop, tampering.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use test_programs_artifacts::{CLI_ECHO, CLI_UNSATISFIED, HTTP_HELLO};

use crate::registry::{TestRegistry, sha256};
use crate::util::{Run, Served, assert_one_clean_error, get, run, run_with_stdin, wharf};

/// A private data dir (store, logins) and Docker config dir for one test.
pub(crate) struct Env {
    pub data: tempfile::TempDir,
    pub docker: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { data: tempfile::tempdir().unwrap(), docker: tempfile::tempdir().unwrap() }
    }

    pub fn wharf(&self, args: &[&str]) -> Command {
        let mut cmd = wharf(args);
        cmd.env("WHARF_DATA_DIR", self.data.path())
            .env("DOCKER_CONFIG", self.docker.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env_remove("WHARF_REGISTRY_USERNAME")
            .env_remove("WHARF_REGISTRY_PASSWORD")
            .env_remove("WHARF_REGISTRY_HOST");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.wharf(args))
    }

    fn store(&self) -> PathBuf {
        self.data.path().join("store")
    }

    fn stored_blobs(&self) -> usize {
        std::fs::read_dir(self.store().join("blobs/sha256")).map_or(0, |d| d.count())
    }
}

/// `host/repo:tag@sha256:...` -> the digest.
fn digest_of(stdout: &str) -> String {
    stdout.trim().rsplit_once('@').expect("REF@DIGEST on stdout").1.to_string()
}

fn inspect_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend(args);
    serde_json::from_str(&env.run(&all).expect_code(0).stdout).unwrap()
}

fn names(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn push_pull_inspect_run_round_trip() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let (host, r1, r2) = (registry.host.as_str(), registry.reference("echo:v1"), registry.reference("echo:v2"));

    let pushed = env.run(&["push", "--insecure", host, "-a", "org.example.k=v", CLI_ECHO, &r1]).expect_code(0);
    let digest = digest_of(&pushed.stdout);
    assert_eq!(pushed.stdout.trim(), format!("{r1}@{digest}"));
    // Reproducible: the same bytes and SOURCE_DATE_EPOCH give the same digest (http:// form).
    let again = env.run(&["push", "-a", "org.example.k=v", CLI_ECHO, &format!("http://{r2}")]).expect_code(0);
    assert_eq!(digest_of(&again.stdout), digest);

    // The manifest as the registry serves it: WG media types, title, config field order.
    let response = crate::registry::http(host, "GET", "/v2/echo/manifests/v1", None, &[]).unwrap();
    assert_eq!(response.status, 200);
    let manifest = response.body;
    assert_eq!(sha256(&manifest), digest);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["annotations"]["org.opencontainers.image.title"], "cli_echo.wasm");
    assert_eq!(manifest["annotations"]["org.example.k"], "v");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.created"], "2023-11-14T22:13:20Z");
    let config_path = format!("/v2/echo/blobs/{}", manifest["config"]["digest"].as_str().unwrap());
    let config = crate::registry::http(host, "GET", &config_path, None, &[]).unwrap().body;
    let config = String::from_utf8(config).unwrap();
    let order =
        ["created", "architecture", "os", "layerDigests", "component"].map(|k| config.find(&format!("\"{k}\"")));
    assert!(order.windows(2).all(|w| w[0].is_some() && w[0] < w[1]), "{config}");
    assert!(config.contains(r#""architecture":"wasm","os":"wasip2""#), "{config}");

    // Inspect shows the guest's world.
    let json = inspect_json(&env, &["--insecure", host, &r1]);
    assert_eq!(json["manifest"]["digest"], digest.as_str());
    let exports = names(&json["component"]["exports"]);
    let imports = names(&json["component"]["imports"]);
    assert!(exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2.")), "{exports:?}");
    assert!(imports.iter().any(|i| i.starts_with("wasi:cli/stdout@0.2.")), "{imports:?}");
    assert!(imports.iter().all(|i| !i.contains("http")), "{imports:?}");
    let table = env.run(&["inspect", "--insecure", host, &r1]).expect_code(0).stdout;
    for needle in
        ["application/vnd.wasm.config.v0+json", "application/wasm", "Platform     wasip2/wasm", "wasi:cli/run@0.2."]
    {
        assert!(table.contains(needle), "{needle} not in:\n{table}");
    }
    // A local file inspects the same way, without a registry.
    assert_eq!(inspect_json(&env, &[CLI_ECHO])["component"]["imports"], json["component"]["imports"]);
    assert_eq!(env.stored_blobs(), 0, "inspect stores nothing");

    // Pull: byte-identical layer, stored once.
    let out = env.data.path().join("out.wasm");
    let pulled = env.run(&["pull", "--insecure", host, &r1, "-o", out.to_str().unwrap()]).expect_code(0);
    assert_eq!(digest_of(&pulled.stdout), digest);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(CLI_ECHO).unwrap());
    assert_eq!(env.stored_blobs(), 3);
    env.run(&["pull", "--insecure", host, &r2]).expect_code(0);
    assert_eq!(env.stored_blobs(), 3, "the second tag reuses every blob");
    let index: Value = serde_json::from_slice(&std::fs::read(env.store().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    // Run from the reference, from the store with --pull=never, and pull-always.
    let out = env.run(&["run", "--insecure", host, &r1, "args", "x"]).expect_code(0);
    assert_eq!(out.stdout, format!("{r1}\nargs\nx\n"));
    env.run(&["run", "--pull=never", &r2]).expect_code(0);
    env.run(&["run", "--pull=always", "--insecure", host, &r2]).expect_code(0);
    let other = Env::new();
    let out = other.run(&["run", "--pull=never", &r1]).expect_code(2);
    assert_one_clean_error(&out, "is not in the local store and --pull=never was given");

    // Unknown tag and repository: "not found", exit 2, nothing stored.
    for missing in [registry.reference("echo:nope"), registry.reference("nothing:v1")] {
        let out = other.run(&["pull", "--insecure", host, &missing]).expect_code(2);
        assert_one_clean_error(&out, "not found");
        let out = other.run(&["inspect", "--insecure", host, &missing]).expect_code(2);
        assert_one_clean_error(&out, "not found");
    }
    assert_eq!(other.stored_blobs(), 0);
}

#[test]
fn serve_from_a_reference() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let host = registry.host.as_str();
    let reference = registry.reference("hello-http:v1");
    env.run(&["push", "--insecure", host, HTTP_HELLO, &reference]).expect_code(0);
    let server = Served::spawn(env.wharf(&["serve", "--listen", "127.0.0.1:0", "--insecure", host, &reference]));
    assert_eq!(get(&server.url("/")), (200, "Hello from a Wharf component!\n".to_string()));
    drop(server);
    // Pulled once: the store serves it without the registry.
    drop(registry);
    let server = Served::spawn(env.wharf(&["serve", "--listen", "127.0.0.1:0", "--pull=never", &reference]));
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn basic_auth_sources_and_errors() {
    let registry = TestRegistry::with_basic_auth("wharfie", "s3cret");
    let env = Env::new();
    let host = registry.host.as_str();
    let reference = registry.reference("private/echo:v1");

    // Anonymous and wrong passwords are refused clearly.
    let out = env.run(&["push", "--insecure", host, CLI_ECHO, &reference]).expect_code(1);
    assert_one_clean_error(&out, &format!("{host}: authentication failed"));
    let mut cmd = env.wharf(&["push", "--insecure", host, CLI_ECHO, &reference]);
    cmd.env("WHARF_REGISTRY_USERNAME", "wharfie")
        .env("WHARF_REGISTRY_PASSWORD", "wrong")
        .env("WHARF_REGISTRY_HOST", host);
    assert_one_clean_error(&run(cmd).expect_code(1), "authentication failed");

    // Environment variables.
    let mut cmd = env.wharf(&["push", "--insecure", host, CLI_ECHO, &reference]);
    cmd.env("WHARF_REGISTRY_USERNAME", "wharfie")
        .env("WHARF_REGISTRY_PASSWORD", "s3cret")
        .env("WHARF_REGISTRY_HOST", host);
    run(cmd).expect_code(0);
    let out = env.run(&["pull", "--insecure", host, &reference]).expect_code(1);
    assert_one_clean_error(&out, "authentication failed");

    // `wharf login` (password on stdin), then logout.
    run_with_stdin(env.wharf(&["login", "-u", "wharfie", "--password-stdin", host]), b"s3cret\n").expect_code(0);
    let login_file = std::fs::read_to_string(env.data.path().join("auth.json")).unwrap();
    assert!(
        login_file.contains("\"auth\"") && !login_file.contains("s3cret"),
        "Docker's base64 `auth` form: {login_file}"
    );
    env.run(&["pull", "--insecure", host, &reference]).expect_code(0);
    env.run(&["inspect", "--insecure", host, &reference]).expect_code(0);
    env.run(&["logout", host]).expect_code(0);
    env.run(&["inspect", "--insecure", host, &reference]).expect_code(1);
    run_with_stdin(env.wharf(&["login", "-u", "wharfie", "--password-stdin", host]), b"wrong\n").expect_code(0);
    assert_one_clean_error(
        &env.run(&["inspect", "--insecure", host, &reference]).expect_code(1),
        "authentication failed",
    );
    env.run(&["logout", host]).expect_code(0);

    // Docker's config.json, inline.
    let docker_config = env.docker.path().join("config.json");
    std::fs::write(&docker_config, format!(r#"{{"auths":{{"{host}":{{"auth":"d2hhcmZpZTpzM2NyZXQ="}}}}}}"#)).unwrap();
    env.run(&["inspect", "--insecure", host, &reference]).expect_code(0);

    // Docker's config.json with a credential helper found on PATH.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-wharftest");
    std::fs::write(&helper, "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"wharfie\",\"Secret\":\"s3cret\"}' \"$server\"\n").unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&docker_config, format!(r#"{{"credHelpers":{{"{host}":"wharftest"}}}}"#)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = env.wharf(&["inspect", "--insecure", host, &reference]);
    cmd.env("PATH", path);
    run(cmd).expect_code(0);
}

#[test]
pub fn run_refuses_imports_the_host_lacks() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let reference = registry.reference("unsatisfied:v1");
    env.run(&["push", "--insecure", &registry.host, CLI_UNSATISFIED, &reference]).expect_code(0);
    let out = env.run(&["run", "--insecure", &registry.host, &reference]).expect_code(2);
    assert_one_clean_error(&out, &format!("{reference} imports `wharf:test/missing`, which wharf does not provide"));
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .expect("skopeo must be installed: run scripts/setup.sh");
    assert!(out.status.success(), "skopeo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn skopeo_interop() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let host = registry.host.as_str();
    let digest = digest_of(&env.run(&["push", "--insecure", host, CLI_ECHO, &registry.reference("echo:v1")]).stdout);

    // skopeo: registry -> its own OCI layout; wharf reads that layout.
    let layout = tempfile::tempdir().unwrap();
    let oci = format!("oci:{}:v1", layout.path().display());
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{}", registry.reference("echo:v1")), &oci]);
    let json = inspect_json(&env, &[&oci]);
    assert_eq!(json["manifest"]["digest"], digest.as_str(), "skopeo kept the artifact as is");
    assert!(names(&json["component"]["exports"]).iter().any(|e| e.starts_with("wasi:cli/run@")));
    let out_file = layout.path().join("from-layout.wasm");
    env.run(&["pull", &oci, "-o", out_file.to_str().unwrap()]).expect_code(0);
    assert_eq!(std::fs::read(&out_file).unwrap(), std::fs::read(CLI_ECHO).unwrap());
    assert_eq!(env.run(&["run", &oci]).expect_code(0).stdout, "hello from a wharf guest\n");

    // skopeo: layout -> registry under a new name; wharf pulls what skopeo pushed.
    skopeo(&["copy", "--dest-tls-verify=false", &oci, &format!("docker://{}", registry.reference("copied:v1"))]);
    let pulled = env.run(&["pull", "--insecure", host, &registry.reference("copied:v1")]).expect_code(0);
    assert_eq!(digest_of(&pulled.stdout), digest);

    // skopeo reads wharf's store (tags are full references there), and so does wharf.
    let stored = format!("oci:{}:{}", env.store().display(), registry.reference("copied:v1"));
    let out = Command::new("skopeo").args(["inspect", "--raw", &stored]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256(&out.stdout), digest);
    assert_eq!(inspect_json(&env, &[&stored])["manifest"]["digest"], digest.as_str());
}

/// Content another tool might have pushed: legacy layer type, an extra layer, a foreign config,
/// and an image index whose first entry is linux/amd64.
#[test]
fn liberal_pull_of_legacy_layouts_and_indexes() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let host = registry.host.as_str();
    let wasm = std::fs::read(CLI_ECHO).unwrap();
    let layer = registry.push_blob("legacy", &wasm);
    let extra = registry.push_blob("legacy", b"some docs");
    let config = registry.push_blob("legacy", b"{}");
    let descriptor = |media_type: &str, digest: &str, size: usize| {
        format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[{},{}]}}"#,
        descriptor("application/vnd.oci.image.config.v1+json", &config, 2),
        descriptor("application/vnd.wasm.content.layer.v1+wasm", &layer, wasm.len()),
        descriptor("text/markdown", &extra, 9),
    );
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let manifest_digest = registry.push_manifest("legacy", "v1", manifest_type, manifest.as_bytes());

    let json = inspect_json(&env, &["--insecure", host, &registry.reference("legacy:v1")]);
    assert_eq!(json["layers"].as_array().unwrap().len(), 2);
    assert_eq!(json["layers"][1]["mediaType"], "text/markdown");
    assert!(json["component"].is_null(), "a foreign config has no world");
    let out = env.run(&["run", "--insecure", host, &registry.reference("legacy:v1")]).expect_code(0);
    assert_eq!(out.stdout, "hello from a wharf guest\n");

    // An index: the wasm entry is chosen, not the host's platform.
    let linux_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{},"layers":[]}}"#,
        descriptor("application/vnd.oci.image.config.v1+json", &config, 2)
    );
    let linux = registry.push_manifest("legacy", "linux", manifest_type, linux_manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        descriptor(manifest_type, &linux, linux_manifest.len())
            .replace('}', r#","platform":{"architecture":"amd64","os":"linux"}}"#),
        descriptor(manifest_type, &manifest_digest, manifest.len())
            .replace('}', r#","platform":{"architecture":"wasm","os":"wasip2"}}"#),
    );
    let index_type = "application/vnd.oci.image.index.v1+json";
    let index_digest = registry.push_manifest("legacy", "multi", index_type, index.as_bytes());
    let out_file = env.data.path().join("multi.wasm");
    let pulled =
        env.run(&["pull", "--insecure", host, &registry.reference("legacy:multi"), "-o", out_file.to_str().unwrap()]);
    assert_eq!(digest_of(&pulled.expect_code(0).stdout), manifest_digest);
    assert_eq!(std::fs::read(&out_file).unwrap(), wasm);
    let json = inspect_json(&env, &["--insecure", host, &registry.reference("legacy:multi")]);
    assert_eq!(json["indexDigest"], index_digest.as_str());
    env.run(&["run", "--pull=never", &registry.reference("legacy:multi")]).expect_code(0);
}

#[test]
fn tampered_blob_is_refused_and_nothing_is_stored() {
    let registry = TestRegistry::anonymous();
    let env = Env::new();
    let host = registry.host.as_str();
    let reference = registry.reference("echo:v1");
    env.run(&["push", "--insecure", host, CLI_ECHO, &reference]).expect_code(0);
    // Flip bytes of the layer in the registry's storage: same size, different content.
    let layer_digest = sha256(&std::fs::read(CLI_ECHO).unwrap());
    let file = registry.blob_file(&layer_digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let out_file = env.data.path().join("out.wasm");
    let out = env.run(&["pull", "--insecure", host, &reference, "-o", out_file.to_str().unwrap()]).expect_code(2);
    assert_one_clean_error(&out, &format!("digest mismatch for blob of {reference}: expected {layer_digest}"));
    assert_eq!(env.stored_blobs(), 0, "nothing from a failed pull is stored");
    assert!(!out_file.exists());
    assert!(!env.store().join("index.json").exists());
    assert_eq!(std::fs::read_dir(env.store().join(".wharf-tmp")).unwrap().count(), 0, "no temp file left");
    let out = env.run(&["run", "--insecure", host, &reference]).expect_code(2);
    assert_one_clean_error(&out, "digest mismatch");

    // A blob altered in the local store after the fact is not trusted either.
    let good = TestRegistry::anonymous();
    let good_ref = good.reference("echo:v1");
    env.run(&["push", "--insecure", &good.host, CLI_ECHO, &good_ref]).expect_code(0);
    env.run(&["pull", "--insecure", &good.host, &good_ref]).expect_code(0);
    let stored: &Path = &env.store().join("blobs/sha256").join(layer_digest.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(stored).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(stored, bytes).unwrap();
    let out = env.run(&["run", "--pull=never", &good_ref]).expect_code(2);
    assert_one_clean_error(&out, "digest mismatch");
}

#[test]
fn oci_bad_input_is_one_line_and_exit_2() {
    let env = Env::new();
    let not_wasm = env.data.path().join("notes.txt");
    std::fs::write(&not_wasm, "hello").unwrap();
    let not_wasm = not_wasm.to_str().unwrap();
    for (args, needle) in [
        (vec!["push", not_wasm, "127.0.0.1:1/x:v1"], "is not a WebAssembly file"),
        (vec!["push", "-a", "novalue", CLI_ECHO, "127.0.0.1:1/x:v1"], "expected KEY=VALUE"),
        (vec!["push", CLI_ECHO, "127.0.0.1:1/UPPER:v1"], "invalid reference"),
        (vec!["pull", "just-a-name"], "not a reference"),
        (vec!["pull", "org/app:v1"], "not a reference"),
        (vec!["run", "org/app:v1"], "cannot read org/app:v1: no such file"),
        (vec!["inspect", "oci:/no/such/layout:v1"], "not a usable OCI image layout"),
        (vec!["run", "oci:/no/such/layout"], "not a usable OCI image layout"),
        (vec!["login", "-u", "me", "not a host/x"], "is not a registry host"),
    ] {
        let out = env.run(&args).expect_code(2);
        assert_one_clean_error(&out, needle);
    }
    let mut cmd = env.wharf(&["push", CLI_ECHO, "127.0.0.1:1/x:v1"]);
    cmd.env("SOURCE_DATE_EPOCH", "yesterday");
    assert_one_clean_error(&run(cmd).expect_code(2), "SOURCE_DATE_EPOCH");
    // Nothing listens on port 1: a transport failure, exit 1, still one line.
    let out = env.run(&["pull", "--insecure", "127.0.0.1:1", "127.0.0.1:1/x:v1"]).expect_code(1);
    assert_one_clean_error(&out, "127.0.0.1:1/x:v1");
}

#[test]
fn interrupted_pull_stores_nothing() {
    let env = Env::new();
    let wasm = std::fs::read(CLI_ECHO).unwrap();
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#.to_vec();
    let (layer_digest, config_digest) = (sha256(&wasm), sha256(&config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.wasm.config.v0+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/wasm","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        wasm.len()
    );
    let half = wasm.len() / 2;
    let registry = crate::registry::FakeRegistry::start(vec![
        (
            "/v2/cut/manifests/v1".into(),
            "application/vnd.oci.image.manifest.v1+json".into(),
            manifest.clone().into_bytes(),
            manifest.len(),
        ),
        (format!("/v2/cut/blobs/{config_digest}"), "application/octet-stream".into(), config.clone(), config.len()),
        (format!("/v2/cut/blobs/{layer_digest}"), "application/octet-stream".into(), wasm, half),
    ]);
    let reference = format!("{}/cut:v1", registry.host);
    let out = env.run(&["pull", "--insecure", &registry.host, &reference]).expect_code(1);
    assert_one_clean_error(&out, &reference);
    assert_eq!(env.stored_blobs(), 0, "not even the complete config blob is kept");
    assert!(!env.store().join("index.json").exists());
    assert_eq!(std::fs::read_dir(env.store().join(".wharf-tmp")).unwrap().count(), 0);
}
