//! The app manifest, `wharf.toml`: components and the HTTP routes to them. It reads like Spin's
//! `spin.toml` (`[[trigger.http]]` routes, `[component.NAME]` tables); each component's grants
//! use the keys of a Wharf policy file.
//!
//! ```toml
//! [application]
//! name = "shop"
//!
//! [[trigger.http]]
//! route = "/api/..."
//! component = "api"
//!
//! [component.api]
//! source = "api.wasm"                   # relative to this file
//! allow_net = ["https://*.payments.example"]
//! env = ["MODE=prod"]
//! timeout = "5s"
//! ```
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wharf_host::Policy;

use crate::router::Router;

/// A manifest that cannot be used: the file, where in it, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", file.display())]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// The field and the problem, e.g. "component.api: invalid timeout `soon`: ...".
    pub what: String,
}

/// One component of an app.
#[derive(Clone, Debug)]
pub struct ComponentSpec {
    /// Its name in the manifest.
    pub name: String,
    /// `source` as written (a file path or, later, an OCI reference).
    pub source: String,
    /// `source` resolved against the manifest's directory.
    pub source_path: PathBuf,
    /// What it may touch.
    pub policy: Policy,
    /// Instance reuse keys (`max_instance_reuse_count`, `max_instance_concurrent_reuse_count`,
    /// `idle_instance_timeout`); unset ones take the server's defaults for the component's
    /// WASI generation.
    pub reuse: ReuseSpec,
}

/// Instance reuse as written for one component; `None` leaves the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseSpec {
    /// Requests per instance before it is retired (1 = a fresh instance per request).
    pub max_count: Option<usize>,
    /// Requests one instance serves at once (WASI 0.3 only).
    pub max_concurrent: Option<usize>,
    /// How long an idle instance is kept.
    pub idle_timeout: Option<std::time::Duration>,
}

impl ReuseSpec {
    /// These settings over `defaults`.
    pub fn or(self, defaults: crate::Reuse) -> crate::Reuse {
        crate::Reuse {
            max_count: self.max_count.unwrap_or(defaults.max_count),
            max_concurrent: self.max_concurrent.unwrap_or(defaults.max_concurrent),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
        }
    }

    /// Takes the reuse keys out of a component table (the rest is its policy).
    fn take(table: &mut toml::Table) -> Result<Self, String> {
        let count = |table: &mut toml::Table, key: &str| -> Result<Option<usize>, String> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(&n) => Ok(Some(n as usize)),
                Some(other) => Err(format!("{key}: must be an integer from 1 to 1000000, got {other}")),
            }
        };
        let max_count = count(table, "max_instance_reuse_count")?;
        let max_concurrent = count(table, "max_instance_concurrent_reuse_count")?;
        let idle_timeout = match table.remove("idle_instance_timeout") {
            None => None,
            Some(toml::Value::String(text)) => {
                Some(wharf_host::policy::parse_duration(&text).map_err(|e| format!("idle_instance_timeout: {e}"))?)
            }
            Some(other) => return Err(format!("idle_instance_timeout: must be a duration like \"1s\", got {other}")),
        };
        Ok(ReuseSpec { max_count, max_concurrent, idle_timeout })
    }
}

/// A parsed, validated app: components plus a router whose targets index `components`.
#[derive(Clone, Debug)]
pub struct AppManifest {
    /// `application.name`, if given.
    pub name: Option<String>,
    /// Components in name order.
    pub components: Vec<ComponentSpec>,
    /// Routes to component indices.
    pub router: Router,
    /// Message triggers (`[[trigger.messaging]]`), checked against `components`.
    pub messaging: Vec<crate::messaging::MessagingTriggerSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    application: Option<RawApplication>,
    trigger: RawTrigger,
    #[serde(default)]
    component: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    #[serde(default)]
    messaging: Vec<RawMessagingTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessagingTrigger {
    subject: String,
    queue: Option<String>,
    store: Option<String>,
    component: String,
    max_concurrency: Option<i64>,
    stream: Option<String>,
    consumer: Option<String>,
    max_deliver: Option<i64>,
    ack_wait: Option<String>,
    retry_delay: Option<String>,
    dead_letter: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

impl RawTrigger {
    fn messaging_specs(&self) -> Vec<crate::messaging::RawSpec<'_>> {
        self.messaging
            .iter()
            .map(|t| crate::messaging::RawSpec {
                subject: &t.subject,
                queue: t.queue.as_deref(),
                store: t.store.as_deref(),
                component: &t.component,
                max_concurrency: t.max_concurrency,
                durable: crate::jetstream::RawDurable {
                    stream: t.stream.as_deref(),
                    consumer: t.consumer.as_deref(),
                    max_deliver: t.max_deliver,
                    ack_wait: t.ack_wait.as_deref(),
                    retry_delay: t.retry_delay.as_deref(),
                    dead_letter: t.dead_letter.as_deref(),
                },
            })
            .collect()
    }
}

impl AppManifest {
    /// Parses and validates the manifest at `file` whose text is `text`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ManifestError> {
        let err = |what: String| ManifestError { file: file.to_path_buf(), what };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.message().trim().replace('\n', " ")))?;
        let base = file.parent().unwrap_or(Path::new(""));

        let mut components = Vec::new();
        for (name, mut table) in raw.component {
            let source = match table.remove("source") {
                Some(toml::Value::String(s)) if !s.is_empty() => s,
                Some(_) => return Err(err(format!("component.{name}.source: must be a non-empty string"))),
                None => return Err(err(format!("component.{name}: missing `source`"))),
            };
            let reuse = ReuseSpec::take(&mut table).map_err(|e| err(format!("component.{name}.{e}")))?;
            let policy = Policy::from_toml_table(table, base).map_err(|e| err(format!("component.{name}: {e}")))?;
            components.push(ComponentSpec { source_path: base.join(&source), source, policy, name, reuse });
        }

        if raw.trigger.http.is_empty() && raw.trigger.messaging.is_empty() {
            return Err(err("no routes: add at least one [[trigger.http]] with `route` and `component` \
                            (or a [[trigger.messaging]])"
                .into()));
        }
        let messaging = crate::messaging::parse_triggers(&raw.trigger.messaging_specs(), &components).map_err(err)?;
        let mut router = Router::default();
        for (i, trigger) in raw.trigger.http.iter().enumerate() {
            let Some(target) = components.iter().position(|c| c.name == trigger.component) else {
                let defined: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
                return Err(err(format!(
                    "trigger.http[{i}]: component `{}` is not defined (defined: {})",
                    trigger.component,
                    if defined.is_empty() { "none".to_string() } else { defined.join(", ") }
                )));
            };
            router.add(&trigger.route, target).map_err(|e| err(format!("trigger.http[{i}]: {e}")))?;
        }
        Ok(AppManifest { name: raw.application.and_then(|a| a.name), components, router, messaging })
    }

    /// An app of one component serving every path (`wharf serve COMPONENT`).
    pub fn single(source: &str, policy: Policy) -> Self {
        let mut router = Router::default();
        router.add("/...", 0).expect("`/...` is a valid route");
        let component = ComponentSpec {
            name: "main".into(),
            source: source.into(),
            source_path: PathBuf::from(source),
            policy,
            reuse: ReuseSpec::default(),
        };
        AppManifest { name: None, components: vec![component], router, messaging: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AppManifest, String> {
        AppManifest::parse(text, Path::new("/apps/shop/wharf.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_components_and_routes() {
        let app = parse(
            r#"
            [application]
            name = "shop"
            [[trigger.http]]
            route = "/api/..."
            component = "api"
            [[trigger.http]]
            route = "/"
            component = "web"
            [component.api]
            source = "api.wasm"
            allow_net = ["https://*.payments.example"]
            timeout = "5s"
            [component.web]
            source = "/abs/web.wasm"
            "#,
        )
        .unwrap();
        assert_eq!(app.name.as_deref(), Some("shop"));
        assert_eq!(app.components[0].source_path, Path::new("/apps/shop/api.wasm"));
        assert_eq!(app.components[1].source_path, Path::new("/abs/web.wasm"));
        assert_eq!(app.components[0].policy.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(app.router.route("/api/cart"), Some(0));
        assert_eq!(app.router.route("/"), Some(1));
        assert_eq!(app.router.route("/other"), None);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let cases = [
            ("[trigger]\nhttp = []", "/apps/shop/wharf.toml: no routes"),
            (
                "[[trigger.http]]\nroute = \"/\"\ncomponent = \"x\"",
                "trigger.http[0]: component `x` is not defined (defined: none)",
            ),
            (
                "[[trigger.http]]\nroute = \"x\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"",
                "trigger.http[0]: route `x`: must start with `/`",
            ),
            (
                "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\ntimeout = \"soon\"",
                "component.a: invalid timeout `soon`",
            ),
            (
                "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsourc = \"a.wasm\"",
                "component.a: missing `source`",
            ),
            (
                "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\nallowed_hosts = []",
                "component.a: unknown field `allowed_hosts`",
            ),
            ("[trigger]\nhttp = []\n[bogus]", "unknown field `bogus`"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
            assert!(e.starts_with("/apps/shop/wharf.toml: "), "{e}");
        }
    }

    #[test]
    fn jetstream_trigger_errors() {
        let trigger = |subject: &str, extra: &str| {
            format!("[[trigger.messaging]]\nsubject = \"{subject}\"\ncomponent = \"a\"\nstream = \"J\"\n{extra}\n")
        };
        let component = "[component.a]\nsource = \"a.wasm\"\n";
        let e = parse(&format!("{}{component}", trigger("jobs.*", "queue = \"q\""))).unwrap_err();
        assert!(e.contains("trigger.messaging[0].queue: a JetStream trigger"), "{e}");
        let e = parse(&format!("{}{}{component}", trigger("jobs.*", ""), trigger("other.*", ""))).unwrap_err();
        assert!(e.contains("trigger.messaging[1]: consumer `a` on stream `J` is trigger.messaging[0]'s"), "{e}");
        let app =
            parse(&format!("{}{}{component}", trigger("jobs.*", ""), trigger("other.*", "consumer = \"b\""))).unwrap();
        assert_eq!(app.messaging[1].durable.as_ref().unwrap().consumer, "b");
        let e = parse(&format!("{}{component}", trigger("jobs.*", "dead_letter = \"dlq.*\""))).unwrap_err();
        assert!(e.contains("trigger.messaging[0].dead_letter `dlq.*`"), "{e}");
    }
}
