//! WIT doc comments from a component's `package-docs` custom section (the section
//! `wit-component` writes for WIT packages, and `wit-docs-inject` appends to components): the
//! descriptions of tools.
use serde_json::Value;

/// The name of the custom section.
const SECTION: &str = "package-docs";

/// Doc comments of one package, as `wit_parser::PackageMetadata` serializes them (a version
/// byte, then JSON). Empty when the component has none.
#[derive(Debug, Default)]
pub struct PackageDocs(Value);

impl PackageDocs {
    /// Reads the top-level `package-docs` section of `component`. A missing or malformed
    /// section only costs the descriptions, so it is logged, never an error.
    pub fn from_component(component: &[u8]) -> Self {
        let Some(data) = top_level_custom_section(component, SECTION) else { return Self::default() };
        match data.split_first() {
            Some((0 | 1, json)) => match serde_json::from_slice(json) {
                Ok(value) => PackageDocs(value),
                Err(e) => {
                    tracing::debug!("ignoring malformed {SECTION} section: {e}");
                    Self::default()
                }
            },
            _ => {
                tracing::debug!("ignoring {SECTION} section of an unknown version");
                Self::default()
            }
        }
    }

    /// The docs of function `func`, exported at the top level (`interface: None`) or from the
    /// exported interface `interface` (its name without package and version, e.g. `notes`).
    pub fn function(&self, interface: Option<&str>, func: &str) -> Option<String> {
        let found = match interface {
            None => self.worlds().find_map(|w| {
                w.get("func_exports").and_then(|f| f.get(func)).or_else(|| w.get("funcs").and_then(|f| f.get(func)))
            }),
            Some(interface) => {
                // An interface of the package, or one defined inline in a world's export.
                let of_package = self.0.get("interfaces").and_then(|i| i.get(interface));
                let inline = || {
                    self.worlds().find_map(|w| {
                        w.get("interface_exports")
                            .and_then(|i| i.get(interface))
                            .or_else(|| w.get("interfaces").and_then(|i| i.get(interface)))
                    })
                };
                of_package.or_else(inline).and_then(|i| i.get("funcs")).and_then(|f| f.get(func))
            }
        };
        // A function's entry is its docs (v0) or `{"docs": ..., "stability": ...}` (v1).
        let docs = match found? {
            Value::String(docs) => docs,
            entry => entry.get("docs")?.as_str()?,
        };
        Some(docs.trim().to_string()).filter(|d| !d.is_empty())
    }

    fn worlds(&self) -> impl Iterator<Item = &Value> {
        self.0.get("worlds").and_then(Value::as_object).into_iter().flat_map(|w| w.values())
    }
}

/// The data of the first custom section named `name` at the top level of a component or
/// module (nested modules and components are skipped whole).
fn top_level_custom_section<'a>(wasm: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut rest = wasm.get(8..)?;
    while let Some((&id, after_id)) = rest.split_first() {
        let (size, after_size) = leb128_u32(after_id)?;
        let section = after_size.get(..size as usize)?;
        rest = &after_size[size as usize..];
        if id == 0 {
            let (name_len, after_len) = leb128_u32(section)?;
            let section_name = after_len.get(..name_len as usize)?;
            if section_name == name.as_bytes() {
                return Some(&after_len[name_len as usize..]);
            }
        }
    }
    None
}

fn leb128_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb128(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
        let mut payload = leb128(name.len());
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        let mut section = vec![0];
        section.extend(leb128(payload.len()));
        section.extend(payload);
        section
    }

    #[test]
    fn reads_function_docs_of_both_versions() {
        let json = br#"{"worlds":{"w":{"func_exports":{"greet":{"docs":"Greets."}}}},
            "interfaces":{"notes":{"funcs":{"reverse":"Reverses.","blank":{"docs":"  "}}}}}"#;
        let mut data = vec![1];
        data.extend_from_slice(json);
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.extend(custom_section("other", b"x"));
        wasm.extend(custom_section(SECTION, &data));
        let docs = PackageDocs::from_component(&wasm);
        assert_eq!(docs.function(None, "greet").as_deref(), Some("Greets."));
        assert_eq!(docs.function(Some("notes"), "reverse").as_deref(), Some("Reverses."));
        assert_eq!(docs.function(Some("notes"), "blank"), None);
        assert_eq!(docs.function(Some("notes"), "missing"), None);
    }

    #[test]
    fn truncated_or_absent_sections_give_no_docs() {
        let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
        wasm.extend(&custom_section(SECTION, b"\x01{}")[..4]);
        assert_eq!(PackageDocs::from_component(&wasm).function(None, "f"), None);
        assert_eq!(PackageDocs::from_component(b"\0asm").function(None, "f"), None);
    }
}
