//! Standard OCI annotations from a component's own metadata: the custom sections `wasm-tools
//! metadata add` and `wkg` write (`description`, `authors`, `licenses`, `source`, `homepage`,
//! `revision`, `version`; each a UTF-8 string), read from the top level of the binary.
use std::collections::BTreeMap;

/// Custom section name -> the `org.opencontainers.image.*` annotation it fills.
const SECTIONS: [(&str, &str); 7] = [
    ("description", "org.opencontainers.image.description"),
    ("authors", "org.opencontainers.image.authors"),
    ("licenses", "org.opencontainers.image.licenses"),
    ("source", "org.opencontainers.image.source"),
    ("homepage", "org.opencontainers.image.url"),
    ("revision", "org.opencontainers.image.revision"),
    ("version", "org.opencontainers.image.version"),
];

/// The annotations the binary's metadata sections provide. Malformed input yields what was
/// read before the problem (the binary is validated elsewhere).
pub fn annotations(wasm: &[u8]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut rest = wasm.get(8..).unwrap_or_default();
    while let Some((&id, after_id)) = rest.split_first() {
        let Some((size, after_size)) = leb128(after_id) else { break };
        let Some((section, next)) = after_size.split_at_checked(size) else { break };
        if id == 0
            && let Some((name_len, named)) = leb128(section)
            && let Some((name, payload)) = named.split_at_checked(name_len)
            && let Some((_, annotation)) = SECTIONS.iter().find(|(s, _)| s.as_bytes() == name)
            && let Ok(value) = std::str::from_utf8(payload)
        {
            found.insert(annotation.to_string(), value.to_string());
        }
        rest = next;
    }
    found
}

/// An unsigned LEB128 `u32` and the bytes after it.
fn leb128(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend(name.as_bytes());
        body.extend(payload);
        let mut section = vec![0, body.len() as u8];
        section.extend(body);
        section
    }

    #[test]
    fn reads_metadata_sections() {
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.extend(custom("description", b"says hello"));
        wasm.extend(custom("producers", b"\x00"));
        wasm.extend(custom("version", b"1.2.3"));
        let found = annotations(&wasm);
        assert_eq!(found.len(), 2);
        assert_eq!(found["org.opencontainers.image.description"], "says hello");
        assert_eq!(found["org.opencontainers.image.version"], "1.2.3");
        // Truncated input: what was read so far, no panic.
        assert_eq!(annotations(&wasm[..wasm.len() - 2]).len(), 1);
        assert!(annotations(b"\0asm").is_empty());
    }
}
