//! The "image with a `.wasm` file in a tar layer" layout: compiled once, in the shim process.
//!
//! runwasi's precompile hook sees the layers whose media type the shim lists, and only for
//! images whose config says `architecture: wasm` (a native image, such as a pod's pause
//! container, never reaches it). So the shim lists the tar layer types too: the first
//! container of an image hands each tar layer to [`crate::Precompiler`], which compiles every
//! component file in it (through Wharf's compile cache on the node) and returns a *compiled
//! layer*: `WHARFTL1`, then per component its SHA-256, the length of its sealed compiled form
//! and that form ([`crate::precompiled::seal`], keyed by `sha256:<hex>` of the component's
//! bytes). runwasi stores it in containerd's content store and hands it to later containers.
//!
//! Inside the container the component is still the file named by the entrypoint, read from
//! the container's own rootfs (later layers may replace it); its SHA-256 picks the compiled
//! form, whose seal must match that digest. A file with no matching entry is compiled in the
//! container as before.
use std::io::Read;

use sha2::{Digest, Sha256};

/// Layer media types of the tar layout (OCI and Docker, plain and gzip).
pub const TAR_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

const MAGIC: &[u8; 8] = b"WHARFTL1";
/// At most this many components of one layer are compiled (a layer of plugins is compiled
/// when it is first run, in the shim; past this, the rest are compiled in their containers).
pub const MAX_COMPONENTS: usize = 16;
/// A gzip layer is inflated (in the shim process, outside the pod's cgroup) up to this size;
/// what lies beyond is not scanned, and its components are compiled in their containers.
const MAX_INFLATED: u64 = 256 << 20;

/// Whether `media_type` is one of [`TAR_MEDIA_TYPES`].
pub fn is_tar(media_type: &str) -> bool {
    TAR_MEDIA_TYPES.contains(&media_type)
}

/// The regular files of the tar `layer` (gzip when `media_type` says so) that start like a
/// WebAssembly binary, at most [`MAX_COMPONENTS`]. A malformed archive yields the files before
/// the damage: the container then reads its file and compiles it itself.
pub fn wasm_files(media_type: &str, layer: &[u8]) -> Vec<Vec<u8>> {
    let inflated;
    let tar = if media_type.ends_with("gzip") {
        let mut out = Vec::new();
        let decoder = flate2::read::GzDecoder::new(layer);
        if let Err(e) = decoder.take(MAX_INFLATED).read_to_end(&mut out) {
            log::warn!("tar layer: cannot inflate ({e}); scanning what was inflated");
        }
        inflated = out;
        &inflated[..]
    } else {
        layer
    };
    let mut files = Vec::new();
    let mut offset = 0;
    while offset + 512 <= tar.len() && files.len() < MAX_COMPONENTS {
        let header = &tar[offset..offset + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let Some(size) = entry_size(&header[124..136]) else { break };
        let start = offset + 512;
        let Some(end) = start.checked_add(size).filter(|&end| end <= tar.len()) else { break };
        // '0' and NUL are regular files, '7' contiguous files; everything else (directories,
        // links, PAX and GNU long-name headers) is skipped by its size.
        if matches!(header[156], b'0' | 0 | b'7') && tar[start..end].starts_with(b"\0asm") {
            files.push(tar[start..end].to_vec());
        }
        offset = start + size.div_ceil(512) * 512;
    }
    files
}

/// A tar header's size field: octal ASCII, or base-256 when the top bit of the first byte is set.
fn entry_size(field: &[u8]) -> Option<usize> {
    if field[0] & 0x80 != 0 {
        let mut size: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            size = size.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return usize::try_from(size).ok();
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(text, 8).ok()
}

/// A component's SHA-256 (what a compiled layer is searched by).
pub fn sha256(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

/// The digest string a component's compiled form is sealed with: `sha256:<hex>`.
pub fn digest_string(sha256: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(sha256))
}

/// Builds a compiled layer from (the component's bytes' SHA-256, its sealed compiled form).
pub fn compiled_layer(entries: &[([u8; 32], Vec<u8>)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (sha256, sealed) in entries {
        out.extend_from_slice(sha256);
        out.extend_from_slice(&(sealed.len() as u64).to_le_bytes());
        out.extend_from_slice(sealed);
    }
    out
}

/// The sealed compiled form for the component whose SHA-256 is `sha256`, if `layer` is a
/// well-formed compiled layer holding one. The caller still opens the seal.
pub fn find<'a>(layer: &'a [u8], sha256: &[u8; 32]) -> Option<&'a [u8]> {
    let mut rest = layer.strip_prefix(MAGIC)?;
    while !rest.is_empty() {
        let (digest, after) = rest.split_at_checked(32)?;
        let (len, after) = after.split_at_checked(8)?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (sealed, after) = after.split_at_checked(len)?;
        if digest == sha256 {
            return Some(sealed);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, body: &[u8]) {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        header[156] = kind;
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn finds_wasm_files_and_skips_the_rest() {
        let mut tar = Vec::new();
        tar_entry(&mut tar, "././@LongLink", b'L', &[b'x'; 700]);
        tar_entry(&mut tar, "app.wasm", b'0', b"\0asm\x0d\0\x01\0body");
        tar_entry(&mut tar, "etc/passwd", b'0', b"root:x:0:0");
        tar_entry(&mut tar, "link.wasm", b'2', b"");
        tar_entry(&mut tar, "b.wasm", 0, b"\0asm\x01\0\0\0");
        tar.extend_from_slice(&[0; 1024]);
        let files = wasm_files(TAR_MEDIA_TYPES[0], &tar);
        assert_eq!(files, vec![b"\0asm\x0d\0\x01\0body".to_vec(), b"\0asm\x01\0\0\0".to_vec()]);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(wasm_files(TAR_MEDIA_TYPES[1], &gz.finish().unwrap()).len(), 2);

        // Truncated or lying about a size: what came before, no panic.
        assert_eq!(wasm_files(TAR_MEDIA_TYPES[0], &tar[..1536 + 100]).len(), 0);
        let mut lying = tar.clone();
        lying[1536 + 124..1536 + 135].copy_from_slice(b"77777777777");
        assert!(wasm_files(TAR_MEDIA_TYPES[0], &lying).is_empty());
        assert!(wasm_files(TAR_MEDIA_TYPES[1], b"not gzip").is_empty());
    }

    #[test]
    fn compiled_layer_finds_by_digest_only_when_well_formed() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let layer = compiled_layer(&[(a, b"form a".to_vec()), (b, b"form b".to_vec())]);
        assert_eq!(find(&layer, &a), Some(&b"form a"[..]));
        assert_eq!(find(&layer, &b), Some(&b"form b"[..]));
        assert_eq!(find(&layer, &[3; 32]), None);
        assert_eq!(find(&layer[..layer.len() - 1], &b), None, "truncated");
        assert_eq!(find(&compiled_layer(&[]), &a), None);
        assert_eq!(find(b"ustar\0 a raw tar layer", &a), None, "a layer that was not compiled");
        let mut huge = compiled_layer(&[(a, b"x".to_vec())]);
        huge[8 + 32..8 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(find(&huge, &a), None);
    }
}
