//! Which imports a [`Host`](crate::Host) can satisfy, by name, without compiling anything:
//! `wharf run REF` checks an OCI artifact's declared `component.imports` against this before
//! instantiating, and refuses with the whole list of what is missing (linking reports only the
//! first).
//!
//! Keep [`PROVIDED_PACKAGES`] in step with the WASI packages `Host::new` links. Capabilities
//! are not listed here: their interfaces come from their own declarations
//! ([`crate::capabilities::interfaces`]), which a test links one by one.

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

/// The imports in `imports` (names like `wasi:keyvalue/store@0.2.0-draft2`) that the host does
/// not provide, in the order given.
pub fn missing_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    imports.into_iter().filter(|name| !provides(name)).map(str::to_owned).collect()
}

/// Whether the host provides the import `name` (`namespace:package/interface@version`).
pub fn provides(name: &str) -> bool {
    if crate::capabilities::interfaces().any(|provided| same_line(provided, name)) {
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

/// Whether an import of `name` links to the interface `provided` the way wasmtime's linker
/// matches them: a pre-release version only exactly, a release by its semver line (`0.2.x`
/// with `0.2.y`, `1.x` with `1.y`).
fn same_line(provided: &str, name: &str) -> bool {
    if provided == name {
        return true;
    }
    let (Some((path, version)), Some((wanted_path, wanted))) = (provided.split_once('@'), name.split_once('@')) else {
        return false;
    };
    let line = |v: &str| -> Option<String> {
        let mut parts = v.split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        let patch = parts.next()?;
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !(numeric(major) && numeric(minor) && numeric(patch)) || parts.next().is_some() {
            return None;
        }
        Some(if major == "0" { format!("0.{minor}") } else { major.to_owned() })
    };
    path == wanted_path && line(version).is_some_and(|l| Some(l) == line(wanted))
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
        assert!(same_line("wasi:x/y@0.2.0", "wasi:x/y@0.2.7"));
        assert!(same_line("wasi:x/y@1.0.0", "wasi:x/y@1.4.2"));
        assert!(!same_line("wasi:x/y@0.2.0", "wasi:x/y@0.3.0"));
        assert!(!same_line("wasi:x/y@0.2.0", "wasi:x/y@0.2.1-rc"));
        assert!(!same_line("wasi:x/y@0.2.0", "wasi:x/z@0.2.0"));
        assert_eq!(
            missing_imports(["wasi:cli/stdout@0.2.0", "wasi:config/store@0.2.0-rc.2", "x:y/z@1.0.0"]),
            ["wasi:config/store@0.2.0-rc.2", "x:y/z@1.0.0"]
        );
    }
}
