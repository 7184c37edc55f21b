#![no_main]
//! A policy file (`--policy FILE`, and each `[component.NAME]` of a manifest) and the grant
//! flags' parsers: any text gives a policy or a `PolicyError`, never a panic.
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wharf_host::Policy;
use wharf_host::policy::{CapabilityGrant, DirGrant, EnvGrant, NetRule, parse_duration, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::from_toml(text, Path::new("/base")) {
        // What `wharf run` does next, short of touching the file system or DNS.
        let _ = policy.memory_limit();
        let _ = policy.resolved_env(|name| Some(format!("host value of {name}")));
        for rule in &policy.allow_net {
            let _ = rule.matches_http("https", "api.example.com", 443);
            let _ = rule.matches_http("http", "127.0.0.1", 8080);
        }
        let _ = policy.clone().merge(policy);
    }
    // Each line as the value of a grant flag (`--allow-net`, `--max-memory`, ...).
    for line in text.lines() {
        let _ = line.parse::<NetRule>();
        let _ = parse_size(line);
        let _ = parse_duration(line);
        let _ = EnvGrant::parse(line);
        let _ = DirGrant::parse(line, Path::new("/base"));
        for key in wharf_host::capabilities::grant_keys() {
            let _ = CapabilityGrant::parse(key.key, line);
        }
    }
});
