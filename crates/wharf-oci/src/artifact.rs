//! The Wasm OCI artifact in the CNCF Wasm Working Group layout: an image manifest, a
//! `application/vnd.wasm.config.v0+json` config, and one `application/wasm` layer.
//!
//! Everything here is a pure function of its inputs (bytes, time, annotations), so the same
//! component pushed twice with the same `created` time gives the same manifest digest.
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::digest::sha256_digest;
use crate::wit::{self, WasmKind};

/// `application/vnd.oci.image.manifest.v1+json`.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list, accepted on pull like an OCI index.
pub const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest, accepted on pull like an OCI manifest.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The WG's config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The WG's layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Layer media types written by older tools, accepted on pull.
pub const LEGACY_LAYER_MEDIA_TYPES: [&str; 2] =
    ["application/vnd.wasm.content.layer.v1+wasm", "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"];
/// The layer annotation naming the file.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The manifest annotation with the creation time.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Whether a layer of this media type holds a Wasm binary.
pub fn is_wasm_layer(media_type: &str) -> bool {
    media_type == WASM_LAYER_MEDIA_TYPE || LEGACY_LAYER_MEDIA_TYPES.contains(&media_type)
}

/// A content descriptor (OCI image spec): what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Descriptor annotations (e.g. the layer's title).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform, in an image index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an image index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `wasm`, `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `wasip2`, `linux`.
    #[serde(default)]
    pub os: String,
}

/// An OCI image manifest, as written by wharf and as read (liberally) from registries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Present in what wharf writes; optional in what it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers; index 0 is the entry point.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index (or Docker manifest list).
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// The `application/vnd.wasm.config.v0+json` config, fields in the WG's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: String,
    /// Who made it, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    #[serde(default)]
    pub architecture: String,
    /// `wasip2` for components, `wasip1` for core modules.
    #[serde(default)]
    pub os: String,
    /// The digests of the layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// The component's world, for components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentWorld>,
}

impl WasmConfig {
    /// Reads a config blob: `None` when it is not a Wasm WG config (older tools push others).
    /// The bytes are untrusted: never panics (the `oci_manifest` target in `fuzz/`).
    pub fn parse(bytes: &[u8]) -> Option<WasmConfig> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A component's world: what it exports and imports, by interface name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentWorld {
    /// e.g. `wasi:cli/run@0.2.0`.
    #[serde(default)]
    pub exports: Vec<String>,
    /// e.g. `wasi:http/outgoing-handler@0.2.0`.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The target world, when given (`--target-world`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Inputs to [`build`] besides the bytes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The creation time (`SOURCE_DATE_EPOCH` for reproducible builds).
    pub created: SystemTime,
    /// The author, if any.
    pub author: Option<String>,
    /// The layer's file name (title annotation).
    pub title: String,
    /// The `component.target` world.
    pub target_world: Option<String>,
    /// Extra manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A built artifact: exact bytes of the manifest and config, and the layer.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Serialized manifest (the bytes that are pushed and hashed).
    pub manifest_bytes: Vec<u8>,
    /// The manifest, parsed.
    pub manifest: Manifest,
    /// Serialized config.
    pub config_bytes: Vec<u8>,
    /// The layer (the Wasm binary).
    pub layer: Vec<u8>,
}

impl Artifact {
    /// `sha256:<hex>` of the manifest bytes.
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest_bytes)
    }
}

/// Builds the artifact for `wasm` (a component or a core module). `name` is used in errors.
pub fn build(name: &str, wasm: Vec<u8>, options: &BuildOptions) -> Result<Artifact, Error> {
    let kind = wit::kind(&wasm).ok_or_else(|| Error::NotWasm { name: name.into() })?;
    let (os, component) = match kind {
        WasmKind::Module => ("wasip1", None),
        WasmKind::Component => {
            let mut world = wit::component_world(name, &wasm)?;
            world.target = options.target_world.clone();
            ("wasip2", Some(world))
        }
    };
    let created = rfc3339(options.created);
    let layer_digest = sha256_digest(&wasm);
    let config = WasmConfig {
        created: created.clone(),
        author: options.author.clone(),
        architecture: "wasm".into(),
        os: os.into(),
        layer_digests: vec![layer_digest.clone()],
        component,
    };
    let config_bytes = to_json(&config);
    // Standard annotations from the component's metadata; the caller's own win.
    let mut annotations = crate::metadata::annotations(&wasm);
    annotations.insert(CREATED_ANNOTATION.to_string(), created);
    annotations.extend(options.annotations.clone());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        config: Descriptor {
            media_type: CONFIG_MEDIA_TYPE.into(),
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: vec![Descriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.into(),
            digest: layer_digest,
            size: wasm.len() as u64,
            annotations: BTreeMap::from([(TITLE_ANNOTATION.to_string(), options.title.clone())]),
            platform: None,
        }],
        annotations,
    };
    let manifest_bytes = to_json(&manifest);
    Ok(Artifact { manifest_bytes, manifest, config_bytes, layer: wasm })
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_vec(value).expect("serializing a manifest or config")
}

/// Formats `time` as RFC 3339 UTC with second precision (`1970-01-01T00:00:00Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_764_165_845)), "2025-11-26T14:04:05Z");
    }

    fn options() -> BuildOptions {
        BuildOptions {
            created: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            author: None,
            title: "echo.wasm".into(),
            target_world: Some("wasi:cli/command@0.2.0".into()),
            annotations: BTreeMap::from([("org.opencontainers.image.version".into(), "1.0".into())]),
        }
    }

    #[test]
    fn config_fields_are_in_the_working_group_order() {
        let wasm = std::fs::read(test_programs_artifacts::CLI_ECHO).unwrap();
        let artifact = build("echo", wasm, &options()).unwrap();
        let config = String::from_utf8(artifact.config_bytes.clone()).unwrap();
        let keys = ["\"created\"", "\"architecture\"", "\"os\"", "\"layerDigests\"", "\"component\""];
        let positions: Vec<usize> = keys.iter().map(|k| config.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{config}");
        assert!(config.contains("\"os\":\"wasip2\""), "{config}");
        assert!(config.contains("\"target\":\"wasi:cli/command@0.2.0\""), "{config}");
        assert!(config.contains("wasi:cli/run@0.2."), "{config}");
        let manifest = String::from_utf8(artifact.manifest_bytes.clone()).unwrap();
        assert!(manifest.contains(&format!("\"mediaType\":\"{MANIFEST_MEDIA_TYPE}\"")), "{manifest}");
        assert!(manifest.contains("\"org.opencontainers.image.title\":\"echo.wasm\""), "{manifest}");
        assert!(manifest.contains("\"org.opencontainers.image.created\":\"2023-11-14T22:13:20Z\""), "{manifest}");
    }

    #[test]
    fn same_bytes_and_time_give_the_same_digest() {
        let wasm = std::fs::read(test_programs_artifacts::CLI_ECHO).unwrap();
        let a = build("echo", wasm.clone(), &options()).unwrap();
        let b = build("echo", wasm.clone(), &options()).unwrap();
        assert_eq!(a.manifest_digest(), b.manifest_digest());
        let mut later = options();
        later.created += Duration::from_secs(1);
        assert_ne!(a.manifest_digest(), build("echo", wasm, &later).unwrap().manifest_digest());
    }

    #[test]
    fn core_modules_are_wasip1_without_a_world() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let artifact = build("m", module, &options()).unwrap();
        let config: WasmConfig = serde_json::from_slice(&artifact.config_bytes).unwrap();
        assert_eq!(config.os, "wasip1");
        assert!(config.component.is_none());
        assert!(matches!(build("x", b"nope".to_vec(), &options()), Err(Error::NotWasm { .. })));
    }
}
