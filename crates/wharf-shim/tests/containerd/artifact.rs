//! The Working Group's artifact on containerd 1.6, by the route containerd 1.7.7+ takes on its
//! own: the content is imported without unpacking, and the container is created with the
//! image's name and an empty snapshot (no layer is unpacked), through containerd's API since
//! `ctr run` insists on unpacking. The shim then reads the `application/wasm` layer from the
//! content store, as it would under Kubernetes with containerd 1.7.7+.
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::{Container, CreateContainerRequest};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;

use crate::daemon::{self, Containerd};

/// Imports (without unpacking) an OCI layout of the WG artifact for `wasm`, with a Wharf
/// policy layer holding `policy` if given, as `docker.io/wharf-test/NAME:latest`.
pub fn import_wg_artifact(ctd: &Containerd, name: &str, wasm: &[u8], policy: Option<&str>) -> String {
    let mut layers = vec![("application/wasm", wasm.to_vec())];
    if let Some(policy) = policy {
        layers.push(("application/vnd.wharf.policy.v1+toml", policy.as_bytes().to_vec()));
    }
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": layers.iter().map(|(_, bytes)| daemon::digest(bytes)).collect::<Vec<_>>(),
        "component": { "exports": ["wasi:cli/run@0.2.6"], "imports": [] },
    });
    let config = ("application/vnd.wasm.config.v0+json", serde_json::to_vec(&config).unwrap());
    let image = format!("docker.io/wharf-test/{name}:latest");
    let work = ctd.dir().join(format!("artifact-{name}"));
    let imported = ctd.import_layout_no_unpack(&work, &image, config, &layers);
    assert_eq!(imported.code, 0, "{imported:?}");
    image
}

/// Creates container `id` of `image` for the wharf runtime: ctr's default spec with `args`
/// and `env`, on an empty active snapshot of the same name.
pub fn create_container(ctd: &Containerd, id: &str, image: &str, args: &[&str], env: &[&str]) {
    let prepared = ctd.ctr_text(&["snapshots", "prepare", id]);
    assert_eq!(prepared.code, 0, "{prepared:?}");
    let spec = ctd.ctr_text(&["oci", "spec"]);
    assert_eq!(spec.code, 0, "{spec:?}");
    let mut spec: serde_json::Value = serde_json::from_str(&spec.stdout).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["env"] = serde_json::json!(env);
    spec["root"]["path"] = serde_json::json!("rootfs");
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", ctd.namespace()));
    let container = Container {
        id: id.to_string(),
        image: image.to_string(),
        runtime: Some(Runtime { name: "io.containerd.wharf.v1".into(), options: None }),
        spec: Some(prost_types::Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: serde_json::to_vec(&spec).unwrap(),
        }),
        snapshotter: "overlayfs".into(),
        snapshot_key: id.to_string(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let channel = containerd_client::connect(ctd.socket()).await.expect("cannot connect to containerd");
        let request = with_namespace!(CreateContainerRequest { container: Some(container) }, ctd.namespace());
        ContainersClient::new(channel).create(request).await.expect("cannot create the container");
    });
}
