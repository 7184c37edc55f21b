//! `sha256:<hex>` content digests: computing them and checking ones read from the network.
use sha2::{Digest as _, Sha256};

use crate::Error;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a well-formed `sha256:<64 lowercase hex>` digest (safe to use as a file
/// name), or an error naming the digest.
pub fn sha256_hex(digest: &str) -> Result<&str, Error> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        _ => Err(Error::UnsupportedDigest { digest: digest.into() }),
    }
}

/// An incremental SHA-256 over a stream of chunks.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Adds a chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// `sha256:<hex>` of everything added.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// Checks that `bytes` hash to `expected`; `what` names them in the error.
pub fn verify(what: &str, expected: &str, bytes: &[u8]) -> Result<(), Error> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(Error::DigestMismatch { what: what.into(), expected: expected.into(), actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_their_checks() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_digest(b""), empty);
        assert!(sha256_hex(empty).is_ok());
        for bad in ["sha512:abc", "sha256:../../etc/passwd", "sha256:E3B0", "e3b0"] {
            assert!(sha256_hex(bad).is_err(), "{bad}");
        }
        assert!(verify("x", empty, b"").is_ok());
        assert!(matches!(verify("x", empty, b"a"), Err(Error::DigestMismatch { .. })));
    }
}
