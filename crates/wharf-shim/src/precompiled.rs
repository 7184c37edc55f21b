//! The compiled form of a component as stored in containerd's content store: `WHARFSH1`, the
//! SHA-256 of (the original layer's digest, the payload), then `Component::serialize`'s output.
//!
//! runwasi hands the container the compiled blob beside the *original* layer's descriptor, so
//! containerd's digest check does not cover what is deserialized; this seal does, and ties the
//! compiled form to the layer it was compiled from (as Wharf's compile cache does for its
//! entries).
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"WHARFSH1";
const HEADER_LEN: usize = MAGIC.len() + 32;

fn checksum(original_digest: &str, payload: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((original_digest.len() as u64).to_le_bytes());
    hash.update(original_digest.as_bytes());
    hash.update(payload);
    hash.finalize().into()
}

/// Wraps `payload`, compiled from the layer `original_digest`.
pub fn seal(original_digest: &str, payload: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(HEADER_LEN + payload.len());
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&checksum(original_digest, payload));
    blob.extend_from_slice(payload);
    blob
}

/// The payload of `blob`, if it is a sealed compiled form of the layer `original_digest`.
pub fn open<'a>(original_digest: &str, blob: &'a [u8]) -> Result<&'a [u8], &'static str> {
    if blob.len() < HEADER_LEN || &blob[..MAGIC.len()] != MAGIC {
        return Err("not a compiled form written by this shim");
    }
    let (sum, payload) = blob[MAGIC.len()..].split_at(32);
    if sum != checksum(original_digest, payload) {
        return Err("checksum mismatch (altered, or compiled from another layer)");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_only_for_its_layer_and_unaltered() {
        let blob = seal("sha256:aa", b"compiled");
        assert_eq!(open("sha256:aa", &blob), Ok(&b"compiled"[..]));
        assert!(open("sha256:bb", &blob).is_err(), "another layer's compiled form");
        let mut altered = blob.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(open("sha256:aa", &altered).is_err());
        assert!(open("sha256:aa", &blob[..HEADER_LEN - 1]).is_err());
        assert!(open("sha256:aa", b"\0asm\x0d\0\x01\0").is_err(), "a plain component");
    }
}
