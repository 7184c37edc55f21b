#![no_main]
//! What a registry or an OCI layout serves: the manifest or image index (under each media type
//! a server may declare) and the Wasm WG config. Any bytes give a value or an error, never a
//! panic; an accepted manifest has a layer 0 and can be described (`wharf inspect`).
use libfuzzer_sys::fuzz_target;
use wharf_oci::artifact::{DOCKER_LIST_MEDIA_TYPE, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use wharf_oci::{ManifestDocument, Pulled, WasmConfig, parse_manifest};

fuzz_target!(|data: &[u8]| {
    for media_type in ["", MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE] {
        match parse_manifest(media_type, data, "fuzz") {
            Ok(ManifestDocument::Manifest(manifest)) => {
                let pulled = Pulled {
                    manifest_digest: "sha256:0".into(),
                    index_digest: None,
                    manifest,
                    manifest_size: data.len() as u64,
                    config_bytes: data.to_vec(),
                };
                let _ = pulled.wasm_layer();
                let _ = wharf_oci::describe("fuzz", &pulled);
            }
            Ok(ManifestDocument::Index(_)) | Err(_) => {}
        }
    }
    let _ = WasmConfig::parse(data);
});
