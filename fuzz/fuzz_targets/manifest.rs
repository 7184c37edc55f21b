#![no_main]
//! `wharf serve wharf.toml`: any text gives a validated app or a `ManifestError`, never a panic,
//! and every route the router returns names a component that exists.
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wharf_http::AppManifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(app) = AppManifest::parse(text, Path::new("/app/wharf.toml")) else { return };
    let paths = ["/", "/api", "/api/", "/api/x/y", "/health", "//", "/a/../b", "/%2e%2e/"];
    for path in paths.into_iter().chain(text.lines()) {
        if let Some(target) = app.router.route(path) {
            assert!(target < app.components.len(), "route {path} -> {target} of {}", app.components.len());
        }
    }
});
