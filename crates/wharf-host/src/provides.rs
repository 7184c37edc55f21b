//! Which imports a [`Host`](crate::Host) can satisfy, by name, without compiling anything:
//! `wharf run REF` checks an OCI artifact's declared `component.imports` against this before
//! instantiating, and refuses with the whole list of what is missing (linking reports only the
//! first).
//!
//! Keep [`PROVIDED_PACKAGES`] in step with what `Host::new` links: a capability crate that adds
//! interfaces to the linker adds its package here.

/// WIT packages whose interfaces the host links, with the version line it provides (wasmtime
/// matches any `0.2.x` import against the `0.2` line it has, and `0.3.x` against its `0.3.0`).
/// WASI 0.3 has no `wasi:io`: streams and futures are component-model types.
pub const PROVIDED_PACKAGES: &[(&str, &str)] = &[
    ("wasi:cli", "0.2"),
    ("wasi:clocks", "0.2"),
    ("wasi:filesystem", "0.2"),
    ("wasi:http", "0.2"),
    ("wasi:io", "0.2"),
    ("wasi:random", "0.2"),
    ("wasi:sockets", "0.2"),
    ("wasi:cli", "0.3"),
    ("wasi:clocks", "0.3"),
    ("wasi:filesystem", "0.3"),
    ("wasi:http", "0.3"),
    ("wasi:random", "0.3"),
    ("wasi:sockets", "0.3"),
];

/// Interfaces linked at pre-release versions, which match only exactly (`wharf-keyvalue` and
/// `wharf-config` link each draft they support by its full name).
pub const PROVIDED_DRAFTS: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:config/store@0.2.0-draft-2024-09-27",
    "wasi:config/store@0.2.0-draft",
    "wasi:config/runtime@0.2.0-draft",
];

/// The imports in `imports` (names like `wasi:keyvalue/store@0.2.0-draft2`) that the host does
/// not provide, in the order given.
pub fn missing_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    imports.into_iter().filter(|name| !provides(name)).map(str::to_owned).collect()
}

/// Whether the host provides the import `name` (`namespace:package/interface@version`).
pub fn provides(name: &str) -> bool {
    if PROVIDED_DRAFTS.contains(&name) {
        return true;
    }
    let Some((path, version)) = name.split_once('@') else { return false };
    let Some((package, _interface)) = path.split_once('/') else { return false };
    PROVIDED_PACKAGES.iter().any(|(provided, line)| {
        *provided == package
            && version.strip_prefix(line).is_some_and(|rest| rest.starts_with('.') || rest.is_empty())
            && !version.contains('-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_0_2_is_provided_and_the_rest_is_not() {
        assert!(provides("wasi:cli/environment@0.2.0"));
        assert!(provides("wasi:io/streams@0.2.12"));
        assert!(provides("wasi:cli/environment@0.3.0"));
        assert!(provides("wasi:http/client@0.3.2"));
        assert!(provides("wasi:http/handler@0.3.0"));
        assert!(!provides("wasi:io/streams@0.3.0"), "WASI 0.3 has no wasi:io");
        assert!(!provides("wasi:cli/environment@0.3.0-rc-2025-09-16"));
        assert!(!provides("wasi:cli/environment@0.20.0"));
        assert!(!provides("wasi:cli/environment@0.30.0"));
        assert!(provides("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(provides("wasi:keyvalue/atomics@0.2.0-draft"));
        assert!(!provides("wasi:keyvalue/watcher@0.2.0-draft2"));
        assert!(!provides("wasi:keyvalue/store@0.2.0-draft3"));
        assert!(provides("wasi:http/outgoing-handler@0.2.0"));
        assert!(!provides("wasi:blobstore/container@0.2.0-draft"));
        assert!(!provides("my-function"));
        assert_eq!(
            missing_imports(["wasi:cli/stdout@0.2.0", "wasi:config/store@0.2.0-rc.2", "x:y/z@1.0.0"]),
            ["wasi:config/store@0.2.0-rc.2", "x:y/z@1.0.0"]
        );
    }
}
