//! The Kubernetes manifests in `deploy/` against the Kubernetes JSON schemas, offline, with
//! `kubernetes-validate` (PyPI; the schemas ship inside the package) from the venv that
//! `scripts/setup.sh` creates at `<repo>/.venv`.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    let tool = repo().join(".venv/bin/kubernetes-validate");
    assert!(tool.exists(), "{} not found; run scripts/setup.sh", tool.display());
    Command::new(tool).args(["--strict", "--quiet", "--no-warn"]).args(files).output().unwrap()
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn manifests_match_the_kubernetes_schemas() {
    let files = manifests();
    assert_eq!(files.len(), 4, "{files:?}");
    let out = validate(&files);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_validator_rejects_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("deploy/deployment.yaml")).unwrap();
    let broken = dir.path().join("deployment.yaml");
    std::fs::write(&broken, text.replace("replicas: 2", "replicas: two")).unwrap();
    assert!(!validate(std::slice::from_ref(&broken)).status.success());
    std::fs::write(&broken, text.replace("runtimeClassName: wharf", "runtimeClass: wharf")).unwrap();
    assert!(!validate(&[broken]).status.success(), "--strict refuses unknown fields");
}

#[test]
fn manifests_and_containerd_snippet_agree() {
    let deploy = repo().join("deploy");
    let read = |f: &str| std::fs::read_to_string(deploy.join(f)).unwrap();
    assert!(read("runtimeclass.yaml").contains("handler: wharf"));
    assert!(read("deployment.yaml").contains("runtimeClassName: wharf"));
    let snippet = read("containerd-config.toml");
    assert!(snippet.contains(".containerd.runtimes.wharf]"));
    assert!(snippet.contains("runtime_type = \"io.containerd.wharf.v1\""));
}
