//! WebAssembly components as OCI artifacts, in the CNCF Wasm Working Group's layout.
//!
//! - [`artifact`]: the manifest, the `application/vnd.wasm.config.v0+json` config (built from
//!   the component's WIT by [`wit`]) and the `application/wasm` layer; reproducible.
//! - [`Registry`]: push, and a liberal pull (legacy layer types, extra layers, image indexes)
//!   into the local [`Layout`], over `oci-client` with [`auth`] credentials.
//! - [`Layout`]: the local content store, an OCI image layout on disk; blobs are verified
//!   against their digest before they become visible and are written atomically.
//! - [`describe`]: what `wharf inspect` shows.
//!
//! This crate knows nothing about wasmtime execution, HTTP serving or MCP, reads no flags,
//! environment variables or terminal state, and never prints: it logs with `tracing` and
//! reports transfer progress through [`Progress`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), wharf_oci::Error> {
//! use wharf_oci::{Credential, Layout, NoProgress, Registry};
//!
//! let store = Layout::create("/tmp/wharf-store".as_ref())?;
//! let registry = Registry::new(&["127.0.0.1:5000".to_string()])?;
//! let reference = wharf_oci::parse_reference("127.0.0.1:5000/hello:v1")?;
//! let pulled = registry.pull(&reference, &Credential::Anonymous, &store, &NoProgress).await?;
//! let wasm = store.read_blob(&pulled.wasm_layer().digest)?;
//! # Ok(()) }
//! ```
use std::path::PathBuf;

pub mod artifact;
pub mod auth;
mod describe;
pub mod digest;
mod layout;
mod metadata;
mod reference;
mod registry;
mod tls;
mod transport;
mod upload;
pub mod wit;

pub use artifact::{
    Artifact, BuildOptions, ComponentWorld, Descriptor, MANIFEST_MEDIA_TYPE, Manifest, WasmConfig, build,
};
pub use auth::{Credential, CredentialSources};
pub use describe::{Description, LayerInfo, describe};
pub use layout::{Layout, REF_NAME_ANNOTATION};
pub use oci_client::Reference;
pub use registry::{
    MAX_INDEX_ENTRIES, MAX_LAYERS, ManifestDocument, NoProgress, Progress, Pulled, Registry, RegistryConfig,
    parse_manifest, parse_reference, plain_http_host,
};

/// Everything that can go wrong, each naming what it was about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not WebAssembly.
    #[error("{name} is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm {
        /// The file or reference.
        name: String,
    },
    /// The component's type information could not be read.
    #[error("{name}: cannot read the component's WIT world: {reason}")]
    Wit {
        /// The file or reference.
        name: String,
        /// The decoder's explanation.
        reason: String,
    },
    /// A reference that does not parse.
    #[error("invalid reference `{input}`: {reason}")]
    Reference {
        /// What was given.
        input: String,
        /// Why it is not a reference.
        reason: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("{reference}: not found in the registry")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// The registry refused the credentials (or wanted some).
    #[error(
        "{registry}: authentication failed ({detail}); check `wharf login {registry}`, \
         WHARF_REGISTRY_USERNAME/WHARF_REGISTRY_PASSWORD or Docker's config.json"
    )]
    Auth {
        /// The registry host.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// Content did not hash to the digest it was fetched or stored under.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or file.
        what: String,
        /// The digest it was named by.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A digest wharf cannot verify (only `sha256:` is supported) or a malformed one.
    #[error("unsupported or malformed digest `{digest}` (expected sha256:<64 hex digits>)")]
    UnsupportedDigest {
        /// The digest.
        digest: String,
    },
    /// The artifact is not a Wasm artifact wharf understands.
    #[error("{reference}: {reason}")]
    NotAWasmArtifact {
        /// The reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other registry or transport failure.
    #[error("{reference}: {detail}")]
    Registry {
        /// The reference.
        reference: String,
        /// The failure, on one line.
        detail: String,
    },
    /// Nothing by that name in a local layout.
    #[error("{name}: not found in the local store")]
    NotInStore {
        /// The name looked for.
        name: String,
    },
    /// A directory that is not a usable OCI image layout.
    #[error("{path}: not a usable OCI image layout: {reason}")]
    Layout {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Credentials could not be read (a bad config file, a failing credential helper).
    #[error("credentials: {0}")]
    Credentials(String),
    /// A file system operation failed.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// JSON that does not parse as the expected document.
    #[error("{what}: invalid JSON")]
    Json {
        /// The document.
        what: String,
        /// The parser's error.
        source: serde_json::Error,
    },
}

impl Error {
    /// Whether the error is the input's fault (a bad reference, file, artifact or digest)
    /// rather than wharf's or the network's.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::NotWasm { .. }
                | Error::Wit { .. }
                | Error::Reference { .. }
                | Error::NotFound { .. }
                | Error::NotAWasmArtifact { .. }
                | Error::UnsupportedDigest { .. }
                | Error::NotInStore { .. }
                | Error::Layout { .. }
                | Error::DigestMismatch { .. }
        )
    }
}
