//! A real containerd (Debian's package) per test: its root, state, sockets and Wharf's compile
//! cache all in one temp dir, no CRI plugin, and `containerd-shim-wharf-v1` found on its PATH.
//! Dropping it stops the daemon, checks nothing it started is left (no shim process, no mount
//! under the temp dir, no container cgroup) and removes the dir and the namespace's cgroups.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The shim under test.
pub fn shim_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_containerd-shim-wharf-v1"))
}

/// `None` (the test is skipped, with a note) unless running as root; missing `containerd`,
/// `ctr` or `runc` fail the test with the setup hint, as the registry and Redis tests do.
pub fn start() -> Option<Containerd> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("skipped: containerd tests need root (CI runs them as root)");
        return None;
    }
    for tool in ["containerd", "ctr", "runc"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        assert!(found.status.success(), "{tool} not found; run scripts/setup.sh (apt-get install containerd runc)");
    }
    let dir = tempfile::Builder::new().prefix("wharf-ctd-").tempdir().unwrap();
    let root = dir.path();
    let config = format!(
        r#"version = 2
root = "{0}/root"
state = "{0}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{0}/containerd.sock"
[ttrpc]
  address = "{0}/containerd.sock.ttrpc"
[debug]
  address = "{0}/debug.sock"
"#,
        root.display()
    );
    std::fs::write(root.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(root.join("containerd.log")).unwrap();
    let path = format!("{}:{}", shim_bin().parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let child = Command::new("containerd")
        .arg("--config")
        .arg(root.join("config.toml"))
        .env("PATH", path)
        .env("WHARF_CACHE_DIR", root.join("wharf-cache"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot start containerd");
    // A namespace of its own: ctr puts containers in cgroup `/NAMESPACE/ID`, and the drop
    // removes `/NAMESPACE` (empty by then) from every hierarchy.
    let suffix: String =
        root.file_name().unwrap().to_string_lossy().chars().filter(char::is_ascii_alphanumeric).collect();
    let namespace = format!("wharf-test-{}", suffix.to_ascii_lowercase());
    let daemon = Containerd { dir: Some(dir), child, namespace };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon.ctr(&["version"]).status.success() {
        assert!(Instant::now() < deadline, "containerd did not start:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(daemon)
}

/// Files of an image layer: (path in the layer, contents).
pub type Files<'a> = &'a [(&'a str, &'a [u8])];

/// A running containerd.
pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    child: Child,
    namespace: String,
}

/// One `ctr` call's outcome.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Containerd {
    /// The temp dir holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// This daemon's namespace (every `ctr` call here uses it).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    /// The daemon's log (with the shims' lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }

    /// The log once `ready` holds for it, or as it is after 10 s: a shim's lines reach the
    /// daemon's log through a pipe containerd copies from, after the task may have ended.
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if ready(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 40 lines of the log, without plugin loading (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("plugin")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `ctr --address SOCKET --namespace wharf-test ARGS`, run to completion (stdin closed).
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `ctr ARGS` as text, with the exit code.
    pub fn ctr_text(&self, args: &[&str]) -> Ran {
        let out = self.ctr(args);
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `ctr run --rm --runtime io.containerd.wharf.v1 [EXTRA...] IMAGE ID [ARGS...]`.
    pub fn run(&self, extra: &[&str], image: &str, id: &str, args: &[&str]) -> Ran {
        let mut all = vec!["run", "--rm", "--runtime", "io.containerd.wharf.v1", "--platform", "wasi/wasm"];
        all.extend(extra);
        all.extend([image, id]);
        all.extend(args);
        self.ctr_text(&all)
    }

    /// Imports an image in the older "`.wasm` file in a tar layer" layout (platform
    /// `wasi/wasm`, entrypoint `/NAME.wasm`) built from `wasm`, named `IMAGE`
    /// (`docker.io/wharf-test/NAME:latest`). `extra_files` go into the same layer.
    pub fn import_tar_layout(&self, name: &str, wasm: &Path, extra_files: &[(&str, &[u8])]) -> String {
        let wasm = std::fs::read(wasm).unwrap();
        let wasm_path = format!("{name}.wasm");
        let mut files = vec![(wasm_path.as_str(), &wasm[..])];
        files.extend_from_slice(extra_files);
        self.import_tar_image(name, &format!("/{name}.wasm"), &[(&files, false)])
    }

    /// Imports a `wasi/wasm` image with one tar layer per entry of `layers` (its files, and
    /// whether the layer is gzipped), in order, entrypoint `entrypoint`, named
    /// `docker.io/wharf-test/NAME:latest`.
    pub fn import_tar_image(&self, name: &str, entrypoint: &str, layers: &[(Files<'_>, bool)]) -> String {
        let work = self.dir().join(format!("image-{name}"));
        let mut blobs = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, (layer_files, gzip)) in layers.iter().enumerate() {
            let files = work.join(format!("files-{i}"));
            std::fs::create_dir_all(&files).unwrap();
            for (path, bytes) in *layer_files {
                std::fs::write(files.join(path), bytes).unwrap();
            }
            let layer_path = work.join(format!("layer-{i}.tar"));
            let tar = Command::new("tar")
                .arg("-cf")
                .arg(&layer_path)
                .arg("-C")
                .arg(&files)
                .args(["--owner=0", "--group=0", "--numeric-owner"])
                .args(layer_files.iter().map(|(path, _)| path))
                .status()
                .unwrap();
            assert!(tar.success());
            let layer = std::fs::read(&layer_path).unwrap();
            diff_ids.push(digest(&layer));
            if *gzip {
                let gz = Command::new("gzip").args(["-n", "-k"]).arg(&layer_path).status().unwrap();
                assert!(gz.success());
                let gzipped = std::fs::read(layer_path.with_extension("tar.gz")).unwrap();
                blobs.push(("application/vnd.oci.image.layer.v1.tar+gzip", gzipped));
            } else {
                blobs.push(("application/vnd.oci.image.layer.v1.tar", layer));
            }
        }
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasi",
            "config": { "Entrypoint": [entrypoint] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let image = format!("docker.io/wharf-test/{name}:latest");
        let config = ("application/vnd.oci.image.config.v1+json", serde_json::to_vec(&config).unwrap());
        let imported = self.import_layout(&work, &image, config, &blobs);
        assert_eq!(imported.code, 0, "ctr images import failed: {imported:?}");
        image
    }

    /// Writes an OCI image layout (one manifest: `config` and `layers` as (media type, bytes)),
    /// tars it and `ctr images import`s it as `image`.
    pub fn import_layout(&self, work: &Path, image: &str, config: (&str, Vec<u8>), layers: &[(&str, Vec<u8>)]) -> Ran {
        let tarball = write_layout(work, image, config, layers);
        self.ctr_text(&["images", "import", "--platform", "wasi/wasm", tarball.to_str().unwrap()])
    }

    /// As [`Self::import_layout`], with `--no-unpack`: the content and the image record only.
    pub fn import_layout_no_unpack(
        &self,
        work: &Path,
        image: &str,
        config: (&str, Vec<u8>),
        layers: &[(&str, Vec<u8>)],
    ) -> Ran {
        let tarball = write_layout(work, image, config, layers);
        self.ctr_text(&["images", "import", "--no-unpack", "--platform", "wasi/wasm", tarball.to_str().unwrap()])
    }

    /// Processes whose command line mentions this daemon's temp dir (shims, containerd).
    pub fn processes(&self) -> Vec<String> {
        let needle = self.dir().to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if pid == self.child.id() {
                continue;
            }
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains(&needle) {
                    found.push(format!("{pid}: {cmdline}"));
                }
            }
        }
        found
    }

    /// The cgroups of this daemon's namespace, each `/sys/fs/cgroup/[HIERARCHY/]NAMESPACE`.
    fn namespace_cgroups(&self) -> Vec<PathBuf> {
        let mut dirs = vec![Path::new("/sys/fs/cgroup").join(&self.namespace)];
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().filter_map(Result::ok) {
            dirs.push(hierarchy.path().join(&self.namespace));
        }
        dirs.retain(|d| d.is_dir());
        dirs
    }

    /// Container cgroups (`/NAMESPACE/ID`) still present in any hierarchy.
    pub fn cgroups(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in self.namespace_cgroups() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().filter_map(Result::ok) {
                if entry.path().is_dir() {
                    found.push(entry.path().display().to_string());
                }
            }
        }
        found
    }

    /// Mount points under this daemon's temp dir (rootfs snapshots, shim mounts).
    pub fn mounts(&self) -> Vec<String> {
        let needle = self.dir().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        mountinfo.lines().filter(|l| l.contains(&needle)).map(str::to_string).collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // A failed test may leave tasks running: stop and delete them first.
        for id in self.ctr_text(&["tasks", "ls", "-q"]).stdout.lines() {
            self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            self.ctr(&["tasks", "delete", "-f", id]);
        }
        for id in self.ctr_text(&["containers", "ls", "-q"]).stdout.lines() {
            self.ctr(&["containers", "delete", id]);
        }
        // SIGTERM: containerd shuts down cleanly; shims of finished tasks are already gone.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let leftovers = (self.processes(), self.mounts(), self.cgroups());
        for dir in self.namespace_cgroups() {
            let _ = std::fs::remove_dir(dir);
        }
        if leftovers.0.is_empty() && leftovers.1.is_empty() && leftovers.2.is_empty() {
            drop(self.dir.take());
        } else if !std::thread::panicking() {
            // Keep the dir for inspection; the test fails.
            let dir = self.dir.take().unwrap().keep();
            panic!(
                "left behind under {}: processes {:?}, mounts {:?}, cgroups {:?}",
                dir.display(),
                leftovers.0,
                leftovers.1,
                leftovers.2
            );
        }
    }
}

/// Writes an OCI image layout of one manifest under `work` and tars it; returns the tarball.
fn write_layout(work: &Path, image: &str, config: (&str, Vec<u8>), layers: &[(&str, Vec<u8>)]) -> PathBuf {
    let layout = work.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8], media_type: &str| {
        let d = digest(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        serde_json::json!({ "mediaType": media_type, "digest": d, "size": bytes.len() })
    };
    let config = put(&config.1, config.0);
    let layers: Vec<_> = layers.iter().map(|(media_type, bytes)| put(bytes, media_type)).collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    let mut manifest_desc = put(&serde_json::to_vec(&manifest).unwrap(), "application/vnd.oci.image.manifest.v1+json");
    manifest_desc["annotations"] = serde_json::json!({ "io.containerd.image.name": image });
    manifest_desc["platform"] = serde_json::json!({ "architecture": "wasm", "os": "wasi" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest_desc] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let tarball = work.join("image.tar");
    let tar = Command::new("tar").arg("-cf").arg(&tarball).arg("-C").arg(&layout).arg(".").status().unwrap();
    assert!(tar.success());
    tarball
}

/// `sha256:HEX` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
