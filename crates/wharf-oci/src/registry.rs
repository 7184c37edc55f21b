//! Talking to registries: push an [`Artifact`], pull one into a [`Layout`].
//!
//! The manifest and config are pushed as the exact bytes [`crate::build`] produced (so the
//! digest is reproducible); pulls fetch every blob into temp files, check each against its
//! digest, and only then move them into the store and tag the manifest, so a failed pull
//! leaves nothing behind.

use futures_util::StreamExt;
use oci_client::Reference;

use crate::Error;
use crate::artifact::{
    Artifact, DOCKER_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, Descriptor, INDEX_MEDIA_TYPE, Index,
    MANIFEST_MEDIA_TYPE, Manifest, is_wasm_layer,
};
use crate::auth::Credential;
use crate::digest::{Hasher, sha256_hex};
use crate::layout::{Layout, Staged};
pub use crate::transport::RegistryConfig;
use crate::transport::{Session, Transport, read_capped};

/// Receives transfer progress (bytes), e.g. to draw a progress bar.
pub trait Progress: Sync {
    /// `total` more bytes are expected.
    fn add_total(&self, total: u64) {
        let _ = total;
    }
    /// `bytes` more bytes were transferred.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// Ignores progress.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Parses `REGISTRY/REPO[:TAG][@DIGEST]` (Docker's rules: no registry means `docker.io`, no
/// tag means `latest`). An `http://` or `https://` prefix is allowed and dropped; see
/// [`plain_http_host`].
pub fn parse_reference(input: &str) -> Result<Reference, Error> {
    let bare = input.strip_prefix("http://").or_else(|| input.strip_prefix("https://")).unwrap_or(input);
    crate::reference::parse(bare).map_err(|e| Error::Reference { input: input.into(), reason: e.to_string() })
}

/// The registry host of an `http://...` reference, which is then reached over plain HTTP.
pub fn plain_http_host(input: &str) -> Option<String> {
    let rest = input.strip_prefix("http://")?;
    Some(rest.split('/').next().unwrap_or(rest).to_string())
}

/// A registry client. Pulls, pushes and authentication go through wharf's own bounded HTTP
/// ([`RegistryConfig`]: timeouts, manifest cap, where credentials may go); oci-client gives
/// the reference type and maps its errors.
pub struct Registry {
    transport: Transport,
}

/// An artifact in the local store, with its manifest and config.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The digest of the image manifest (of the index's chosen entry, for an index).
    pub manifest_digest: String,
    /// The digest of the image index it was chosen from, if any.
    pub index_digest: Option<String>,
    /// The manifest.
    pub manifest: Manifest,
    /// The size of the manifest bytes.
    pub manifest_size: u64,
    /// The config blob (normally `application/vnd.wasm.config.v0+json`).
    pub config_bytes: Vec<u8>,
}

impl Pulled {
    /// The entry point: layer 0, checked to be a Wasm layer when the artifact was read.
    pub fn wasm_layer(&self) -> &Descriptor {
        &self.manifest.layers[0]
    }

    /// Reads the artifact named `name` (or the only one) from a layout, verifying each blob.
    pub fn from_layout(layout: &Layout, name: Option<&str>) -> Result<Pulled, Error> {
        let label = format!("{}:{}", layout.root().display(), name.unwrap_or_default());
        let mut entry = layout.find(name)?;
        let mut index_digest = None;
        let mut bytes = layout.read_blob(&entry.digest)?;
        let manifest = match parse_manifest(&entry.media_type, &bytes, &label)? {
            ManifestDocument::Manifest(manifest) => manifest,
            ManifestDocument::Index(chosen) => {
                index_digest = Some(entry.digest.clone());
                entry = chosen;
                bytes = layout.read_blob(&entry.digest)?;
                parse_image_manifest(&bytes, &label)?
            }
        };
        let config_bytes = layout.read_blob(&manifest.config.digest)?;
        let manifest_size = bytes.len() as u64;
        Ok(Pulled { manifest_digest: entry.digest, index_digest, manifest, manifest_size, config_bytes })
    }
}

impl Registry {
    /// A client that speaks HTTPS, except plain HTTP to the `insecure` hosts (`host[:port]`),
    /// with the default limits.
    pub fn new(insecure: &[String]) -> Result<Registry, Error> {
        Registry::with_config(RegistryConfig { insecure: insecure.to_vec(), ..RegistryConfig::default() })
    }

    /// A client configured by `config`.
    pub fn with_config(config: RegistryConfig) -> Result<Registry, Error> {
        Ok(Registry { transport: Transport::new(config)? })
    }

    /// Pushes the artifact (blobs the registry already has are skipped) and tags it.
    /// Returns the manifest digest.
    pub async fn push(
        &self,
        reference: &Reference,
        credential: &Credential,
        artifact: &Artifact,
        progress: &dyn Progress,
    ) -> Result<String, Error> {
        let session = self.transport.authenticate(reference, credential, "pull,push").await?;
        let blobs = [
            (&artifact.manifest.config.digest, &artifact.config_bytes),
            (&artifact.manifest.layers[0].digest, &artifact.layer),
        ];
        progress.add_total(blobs.iter().map(|(_, b)| b.len() as u64).sum());
        for (digest, bytes) in blobs {
            if self.transport.blob_exists(reference, &session, digest).await? {
                tracing::debug!(%digest, "blob already in the registry");
            } else {
                tracing::debug!(%digest, size = bytes.len(), "pushing blob");
                self.transport.push_blob(reference, &session, digest, bytes.clone()).await?;
            }
            progress.advance(bytes.len() as u64);
        }
        let manifest = artifact.manifest_bytes.clone();
        self.transport.push_manifest(reference, &session, MANIFEST_MEDIA_TYPE, manifest).await?;
        Ok(artifact.manifest_digest())
    }

    /// Pulls `reference` into `layout` and tags it there as `reference.whole()`. Blobs already
    /// in the store are not downloaded again.
    pub async fn pull(
        &self,
        reference: &Reference,
        credential: &Credential,
        layout: &Layout,
        progress: &dyn Progress,
    ) -> Result<Pulled, Error> {
        let label = reference.whole();
        let session = self.transport.authenticate(reference, credential, "pull").await?;
        let Resolved { bytes, digest, media_type, index, manifest } = self.resolve(reference, &session).await?;

        // Stage every missing blob, verified, before anything becomes visible.
        let mut wanted = vec![&manifest.config];
        wanted.extend(&manifest.layers);
        let missing: Vec<&Descriptor> = wanted.into_iter().filter(|d| !layout.has_blob(&d.digest)).collect();
        progress.add_total(missing.iter().map(|d| d.size).sum());
        let mut staged = Vec::new();
        for descriptor in missing {
            staged.push((
                descriptor.digest.clone(),
                self.download(reference, &session, descriptor, layout, progress).await?,
            ));
        }
        for (digest, file) in staged {
            layout.commit_blob(&digest, file)?;
        }
        layout.put_blob(&digest, &bytes)?;
        let mut tagged = Descriptor {
            media_type: if media_type.is_empty() { MANIFEST_MEDIA_TYPE.into() } else { media_type },
            digest: digest.clone(),
            size: bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        let mut index_digest = None;
        if let Some((index_digest_value, index_bytes)) = index {
            layout.put_blob(&index_digest_value, &index_bytes)?;
            tagged = Descriptor {
                media_type: INDEX_MEDIA_TYPE.into(),
                digest: index_digest_value.clone(),
                size: index_bytes.len() as u64,
                annotations: Default::default(),
                platform: None,
            };
            index_digest = Some(index_digest_value);
        }
        layout.set_ref(&label, &tagged)?;
        let config_bytes = layout.read_blob(&manifest.config.digest)?;
        Ok(Pulled { manifest_digest: digest, index_digest, manifest, manifest_size: bytes.len() as u64, config_bytes })
    }

    /// Reads the manifest and config of `reference` without storing anything (for `inspect`).
    pub async fn fetch(&self, reference: &Reference, credential: &Credential) -> Result<Pulled, Error> {
        let session = self.transport.authenticate(reference, credential, "pull").await?;
        let Resolved { bytes, digest, index, manifest, .. } = self.resolve(reference, &session).await?;
        let config = &manifest.config;
        sha256_hex(&config.digest)?;
        let cap = config.size.min(self.transport.config.max_manifest_bytes);
        let response = self.transport.blob(reference, &session, &config.digest).await?;
        let what = format!("config blob {}", config.digest);
        let config_bytes = read_capped(response, cap, reference, &what, self.transport.config.timeout).await?;
        crate::digest::verify(&format!("config of {}", reference.whole()), &config.digest, &config_bytes)?;
        let index_digest = index.map(|(digest, _)| digest);
        Ok(Pulled { manifest_digest: digest, index_digest, manifest, manifest_size: bytes.len() as u64, config_bytes })
    }

    /// Fetches the manifest, following an image index to its Wasm entry.
    async fn resolve(&self, reference: &Reference, session: &Session) -> Result<Resolved, Error> {
        let label = reference.whole();
        let (bytes, digest) = self.fetch_manifest(reference, session).await?;
        let media_type = media_type_of(&bytes);
        match parse_manifest(&media_type, &bytes, &label)? {
            ManifestDocument::Manifest(manifest) => Ok(Resolved { bytes, digest, media_type, index: None, manifest }),
            ManifestDocument::Index(entry) => {
                tracing::debug!(index = %digest, entry = %entry.digest, "resolved image index");
                let index = Some((digest, bytes));
                let (bytes, digest) =
                    self.fetch_manifest(&reference.clone_with_digest(entry.digest.clone()), session).await?;
                let manifest = parse_image_manifest(&bytes, &label)?;
                Ok(Resolved { bytes, digest, media_type: entry.media_type, index, manifest })
            }
        }
    }

    /// Fetches a manifest or index, bounded in size and time, checked against the digest header
    /// and the reference's digest.
    async fn fetch_manifest(&self, reference: &Reference, session: &Session) -> Result<(Vec<u8>, String), Error> {
        let accepted = [MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE];
        self.transport.manifest(reference, session, &accepted).await
    }

    /// Streams one blob into a temp file in the store, hashing as it goes.
    async fn download(
        &self,
        reference: &Reference,
        session: &Session,
        descriptor: &Descriptor,
        layout: &Layout,
        progress: &dyn Progress,
    ) -> Result<Staged, Error> {
        let expected = descriptor.digest.as_str();
        sha256_hex(expected)?;
        let mut file = layout.stage()?;
        let mut hasher = Hasher::default();
        let mut received = 0u64;
        let response = self.transport.blob(reference, session, expected).await?;
        if response.content_length().is_some_and(|n| n > descriptor.size) {
            return Err(Error::Registry {
                reference: reference.whole(),
                detail: format!("blob {expected} is larger than its declared {} bytes", descriptor.size),
            });
        }
        let mut stream = response.bytes_stream();
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if received > descriptor.size {
                        failure =
                            Some(format!("blob {expected} is larger than its declared {} bytes", descriptor.size));
                        break;
                    }
                    hasher.update(&chunk);
                    file.write(&chunk)?;
                    progress.advance(chunk.len() as u64);
                }
                Err(e) => {
                    failure = Some(format!("downloading blob {expected}: {e}"));
                    break;
                }
            }
        }
        // A blob of the declared size with the wrong bytes is a digest error, however the
        // transport reported it.
        if received == descriptor.size {
            let actual = hasher.finish();
            if actual != expected {
                return Err(Error::DigestMismatch {
                    what: format!("blob of {}", reference.whole()),
                    expected: expected.into(),
                    actual,
                });
            }
            if failure.is_none() {
                return Ok(file);
            }
        }
        let detail = failure.unwrap_or_else(|| format!("blob {expected}: got {received} of {} bytes", descriptor.size));
        Err(Error::Registry { reference: reference.whole(), detail })
    }
}

/// A manifest as fetched, with the index it came from.
struct Resolved {
    bytes: Vec<u8>,
    digest: String,
    media_type: String,
    /// `(digest, bytes)` of the index, if the reference named one.
    index: Option<(String, Vec<u8>)>,
    manifest: Manifest,
}

fn media_type_of(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe { media_type: Some(t), .. }) => t,
        Ok(Probe { manifests: Some(_), .. }) => INDEX_MEDIA_TYPE.into(),
        _ => String::new(),
    }
}

/// The most layers an image manifest may list (Wasm artifacts have one; every layer is fetched).
pub const MAX_LAYERS: usize = 64;
/// The most entries an image index may list.
pub const MAX_INDEX_ENTRIES: usize = 1024;

/// The index in `bytes`, if `media_type` (or the document itself) says it is one.
fn parse_index(media_type: &str, bytes: &[u8], label: &str) -> Result<Option<Index>, Error> {
    let media_type = if media_type.is_empty() { media_type_of(bytes) } else { media_type.to_string() };
    if media_type != INDEX_MEDIA_TYPE
        && media_type != DOCKER_LIST_MEDIA_TYPE
        && media_type_of(bytes) != INDEX_MEDIA_TYPE
    {
        return Ok(None);
    }
    let index: Index =
        serde_json::from_slice(bytes).map_err(|source| Error::Json { what: format!("index of {label}"), source })?;
    if index.manifests.len() > MAX_INDEX_ENTRIES {
        return Err(Error::NotAWasmArtifact {
            reference: label.into(),
            reason: format!("an image index with {} entries (at most {MAX_INDEX_ENTRIES})", index.manifests.len()),
        });
    }
    Ok(Some(index))
}

/// The Wasm entry of an index: a `wasm` architecture or `wasi*` OS, else the only entry.
fn choose_wasm_entry(index: &Index, label: &str) -> Result<Descriptor, Error> {
    let is_wasm =
        |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.architecture == "wasm" || p.os.starts_with("wasi"));
    if let Some(entry) = index.manifests.iter().find(is_wasm) {
        return Ok(entry.clone());
    }
    match index.manifests.as_slice() {
        [only] => Ok(only.clone()),
        entries => {
            let platforms: Vec<String> = entries
                .iter()
                .map(|d| d.platform.as_ref().map_or("unknown".into(), |p| format!("{}/{}", p.os, p.architecture)))
                .collect();
            Err(Error::NotAWasmArtifact {
                reference: label.into(),
                reason: format!("an image index with no wasm entry (platforms: {})", platforms.join(", ")),
            })
        }
    }
}

/// A manifest document as a registry or a layout serves it.
#[derive(Debug, Clone)]
pub enum ManifestDocument {
    /// An image manifest whose layer 0 holds Wasm.
    Manifest(Manifest),
    /// An image index: its Wasm entry, whose manifest is to be fetched next.
    Index(Descriptor),
}

/// Parses a fetched manifest document as every pull does: an image index (by `media_type`, or,
/// when that is empty, by the document's own `mediaType` or `manifests`) resolves to its `wasm` /
/// `wasi*` entry, else to its only one; an image manifest must have a Wasm layer 0 (the legacy
/// layer types count). `label` names the artifact in errors. The bytes are untrusted: any input
/// gives a value or an [`Error`], never a panic (the `oci_manifest` target in `fuzz/`).
pub fn parse_manifest(media_type: &str, bytes: &[u8], label: &str) -> Result<ManifestDocument, Error> {
    match parse_index(media_type, bytes, label)? {
        Some(index) => choose_wasm_entry(&index, label).map(ManifestDocument::Index),
        None => parse_image_manifest(bytes, label).map(ManifestDocument::Manifest),
    }
}

/// Parses an image manifest and checks that layer 0 holds Wasm.
fn parse_image_manifest(bytes: &[u8], label: &str) -> Result<Manifest, Error> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|source| Error::Json { what: format!("manifest of {label}"), source })?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(Error::NotAWasmArtifact {
            reference: label.into(),
            reason: format!("a manifest with {} layers (at most {MAX_LAYERS})", manifest.layers.len()),
        });
    }
    match manifest.layers.first() {
        Some(layer) if is_wasm_layer(&layer.media_type) => Ok(manifest),
        Some(layer) => Err(Error::NotAWasmArtifact {
            reference: label.into(),
            reason: format!("its first layer is `{}`, not a Wasm layer (`application/wasm`)", layer.media_type),
        }),
        None => Err(Error::NotAWasmArtifact { reference: label.into(), reason: "it has no layers".into() }),
    }
}

/// An error and its sources on one line, with a hint when TLS met a plain-HTTP server.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    let mut line = one_line(&parts.join(": ")).unwrap_or_default();
    if line.contains("InvalidContentType")
        || line.contains("invalid peer certificate")
        || line.contains("corrupt message")
    {
        line += " (for a plain-HTTP registry, pass --insecure HOST or write the reference as http://...)";
    }
    line
}

fn one_line(text: &str) -> Option<String> {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::Platform;
    use crate::digest::sha256_digest;

    fn entry(os: &str, arch: &str) -> Descriptor {
        Descriptor {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: sha256_digest(os.as_bytes()),
            size: 1,
            annotations: Default::default(),
            platform: Some(Platform { os: os.into(), architecture: arch.into() }),
        }
    }

    #[test]
    fn an_index_resolves_to_its_wasm_entry() {
        let index =
            Index { manifests: vec![entry("linux", "amd64"), entry("wasip2", "wasm"), entry("linux", "arm64")] };
        assert_eq!(choose_wasm_entry(&index, "x").unwrap().platform.unwrap().os, "wasip2");
        let index = Index { manifests: vec![entry("linux", "amd64"), entry("linux", "arm64")] };
        let err = choose_wasm_entry(&index, "x").unwrap_err().to_string();
        assert!(err.contains("no wasm entry") && err.contains("linux/amd64"), "{err}");
    }

    #[test]
    fn manifests_are_read_liberally() {
        let layer = |t: &str| format!(r#"{{"mediaType":"{t}","digest":"sha256:{}","size":3}}"#, "a".repeat(64));
        let manifest = |layers: &[String]| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[{}]}}"#,
                "b".repeat(64),
                layers.join(",")
            )
        };
        for legacy in crate::artifact::LEGACY_LAYER_MEDIA_TYPES {
            let text = manifest(&[layer(legacy), layer("application/octet-stream")]);
            assert_eq!(parse_image_manifest(text.as_bytes(), "x").unwrap().layers.len(), 2);
        }
        let text = manifest(&[layer("application/vnd.oci.image.layer.v1.tar+gzip")]);
        let err = parse_image_manifest(text.as_bytes(), "x").unwrap_err().to_string();
        assert!(err.contains("not a Wasm layer"), "{err}");
        assert!(parse_image_manifest(manifest(&[]).as_bytes(), "x").is_err());
    }

    #[test]
    fn documents_are_told_apart() {
        let entries = [entry("linux", "amd64"), entry("wasip2", "wasm")];
        let index = serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "manifests": entries })).unwrap();
        // No media type from the layout or registry: the document's `manifests` says index.
        for media_type in ["", INDEX_MEDIA_TYPE] {
            match parse_manifest(media_type, &index, "x").unwrap() {
                ManifestDocument::Index(chosen) => assert_eq!(chosen.platform.unwrap().os, "wasip2"),
                other => panic!("{other:?}"),
            }
        }
        let options = crate::BuildOptions {
            created: std::time::SystemTime::UNIX_EPOCH,
            author: None,
            title: "x.wasm".into(),
            target_world: None,
            annotations: Default::default(),
        };
        let manifest = crate::build("x", b"\0asm\x01\0\0\0".to_vec(), &options).unwrap().manifest_bytes;
        assert!(matches!(parse_manifest("", &manifest, "x"), Ok(ManifestDocument::Manifest(_))));
        assert!(matches!(parse_manifest(INDEX_MEDIA_TYPE, &manifest, "x"), Err(Error::NotAWasmArtifact { .. })));
        for garbage in [&b""[..], b"null", b"[]", b"{\"manifests\":7}", b"\xff"] {
            assert!(parse_manifest("", garbage, "x").is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn layer_and_index_counts_are_capped() {
        let layer = format!(r#"{{"mediaType":"application/wasm","digest":"sha256:{}","size":3}}"#, "a".repeat(64));
        let manifest = |n: usize| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.wasm.config.v0+json","digest":"sha256:{}","size":2}},"layers":[{}]}}"#,
                "b".repeat(64),
                vec![layer.as_str(); n].join(",")
            )
        };
        assert!(parse_image_manifest(manifest(MAX_LAYERS).as_bytes(), "x").is_ok());
        let err = parse_image_manifest(manifest(MAX_LAYERS + 1).as_bytes(), "x").unwrap_err().to_string();
        assert!(err.contains("at most 64"), "{err}");
        let entries = vec![entry("wasip2", "wasm"); MAX_INDEX_ENTRIES + 1];
        let index = serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "manifests": entries })).unwrap();
        let err = parse_manifest(INDEX_MEDIA_TYPE, &index, "x").unwrap_err().to_string();
        assert!(err.contains("at most 1024"), "{err}");
    }

    #[test]
    fn references_and_plain_http() {
        let r = parse_reference("http://127.0.0.1:5000/hello:v1").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("127.0.0.1:5000", "hello", Some("v1")));
        assert_eq!(plain_http_host("http://127.0.0.1:5000/hello:v1").as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(plain_http_host("127.0.0.1:5000/hello:v1"), None);
        assert!(matches!(parse_reference("UPPER/Case::"), Err(Error::Reference { .. })));
    }
}
