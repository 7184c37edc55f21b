//! What `wharf inspect` shows: one artifact's media types, digests, sizes and world.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::artifact::{ComponentWorld, Manifest, TITLE_ANNOTATION, WasmConfig};
use crate::registry::Pulled;

/// A summary of one artifact, serialized as-is by `wharf inspect --json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// The reference or file it was read from.
    pub reference: String,
    /// The image index it was chosen from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// The manifest.
    pub manifest: LayerInfo,
    /// The config blob.
    pub config: LayerInfo,
    /// The config's `created`, when the config is a Wasm config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The config's `author`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `wasm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `wasip2` or `wasip1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The layers; index 0 is the entry point.
    pub layers: Vec<LayerInfo>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The component's imports and exports, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentWorld>,
}

/// A descriptor, flattened for display.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// The `org.opencontainers.image.title` annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Describes an artifact.
/// A config that is not a Wasm config (older tools) leaves the world unknown.
pub fn describe(reference: &str, pulled: &Pulled) -> Description {
    let manifest: &Manifest = &pulled.manifest;
    let config = WasmConfig::parse(&pulled.config_bytes);
    let layer = |d: &crate::Descriptor| LayerInfo {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        title: d.annotations.get(TITLE_ANNOTATION).cloned(),
    };
    let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
    Description {
        reference: reference.into(),
        index_digest: pulled.index_digest.clone(),
        manifest: LayerInfo {
            media_type: manifest.media_type.clone().unwrap_or_else(|| crate::MANIFEST_MEDIA_TYPE.into()),
            digest: pulled.manifest_digest.clone(),
            size: pulled.manifest_size,
            title: None,
        },
        config: layer(&manifest.config),
        created: config.as_ref().and_then(|c| non_empty(&c.created)),
        author: config.as_ref().and_then(|c| c.author.clone()),
        architecture: config.as_ref().and_then(|c| non_empty(&c.architecture)),
        os: config.as_ref().and_then(|c| non_empty(&c.os)),
        layers: manifest.layers.iter().map(layer).collect(),
        annotations: manifest.annotations.clone(),
        component: config.and_then(|c| c.component),
    }
}
