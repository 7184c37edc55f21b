//! `wasi:messaging` as a Wharf capability: `--messaging-publish PATTERN[=STORE]` and
//! `--messaging-subscribe PATTERN[=STORE]` grants (`messaging_publish = [...]`,
//! `messaging_subscribe = [...]` in policy files), `[messaging.stores.NAME]` runtime config.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use wasmtime::component::Linker;
use wharf_capability::{Capability, GrantKey, HasCapability, RuntimeContext};

use crate::broker::{Broker, MemoryBroker, NatsAuth, NatsBroker};
use crate::subject::{check_pattern, covers};

/// The store a grant or trigger uses when it names none.
pub const DEFAULT_STORE: &str = "default";

/// The `wasi:messaging` capability (registered in `wharf-host`).
pub struct MessagingCapability;

/// What a grant allows on its subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Send to them (`producer.send`, `request-reply.request`).
    Publish,
    /// Receive from them (message triggers).
    Subscribe,
}

/// One subject pattern a component may publish to or subscribe to, on one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingGrant {
    /// Publish or subscribe.
    pub direction: Direction,
    /// The NATS subject pattern (`orders.*`, `events.>`).
    pub pattern: String,
    /// The configured store (`default` unless named).
    pub store: String,
    // Merge identity: direction, pattern and store.
    name: String,
}

impl MessagingGrant {
    /// Parses `PATTERN` or `PATTERN=STORE`; the error says what is expected.
    pub fn parse(direction: Direction, text: &str) -> Result<Self, String> {
        let (pattern, store) = text.split_once('=').unwrap_or((text, DEFAULT_STORE));
        check_pattern(pattern).map_err(|e| format!("{e}, optionally followed by `=STORE`"))?;
        if store.is_empty() || !store.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return Err("expected PATTERN=STORE with a store name of letters, digits, `_`, `-`, `.`".into());
        }
        let name = format!("{direction:?}:{pattern}={store}");
        Ok(MessagingGrant { direction, pattern: pattern.to_owned(), store: store.to_owned(), name })
    }
}

/// One `[messaging.stores.NAME]` table.
///
/// ```toml
/// [messaging.stores.default]
/// type = "nats"
/// url = "nats://127.0.0.1:4222"
/// token = "..."          # or user + password, or creds = "app.creds"
/// ```
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// The in-process broker (the default store when none is configured).
    Memory,
    /// A NATS server (core NATS).
    Nats {
        /// `nats://host:port` (several separated by commas).
        url: String,
        /// A token.
        token: Option<String>,
        /// A user name (with `password`).
        user: Option<String>,
        /// The user's password.
        password: Option<String>,
        /// A `.creds` file, relative to the runtime-config file.
        creds: Option<PathBuf>,
    },
}

// By hand: the URL's user info, the token and the password are never printed.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Nats { url, token, user, password, creds } => f
                .debug_struct("Nats")
                .field("url", &crate::broker::redact_url(url))
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .field("user", user)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .field("creds", creds)
                .finish(),
        }
    }
}

/// The `[messaging]` section of the runtime config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingConfig {
    /// Store name to broker.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
}

/// The brokers of a process, by store name; `default` is the in-process broker unless
/// configured otherwise.
pub struct Stores(BTreeMap<String, Arc<Broker>>);

impl Stores {
    /// The broker of store `name`.
    pub fn broker(&self, name: &str) -> Option<&Arc<Broker>> {
        self.0.get(name)
    }

    fn known(&self) -> String {
        self.0.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// One component's messaging grants, bound to the brokers they name.
pub struct MessagingCtx {
    grants: Vec<MessagingGrant>,
    brokers: BTreeMap<String, Arc<Broker>>,
}

impl MessagingCtx {
    /// The broker of `store` if the component has any grant on it.
    pub fn broker(&self, store: &str) -> Option<&Arc<Broker>> {
        self.brokers.get(store)
    }

    /// The granted store whose broker is `broker`.
    pub(crate) fn brokers_store(&self, broker: &Arc<Broker>) -> Option<&str> {
        self.brokers.iter().find(|(_, b)| Arc::ptr_eq(b, broker)).map(|(name, _)| name.as_str())
    }

    /// Whether the component may do `direction` on every subject `pattern` matches in `store`.
    pub fn allows(&self, direction: Direction, store: &str, pattern: &str) -> bool {
        self.grants.iter().any(|g| g.direction == direction && g.store == store && covers(&g.pattern, pattern))
    }
}

const PUBLISH: GrantKey = GrantKey {
    key: "messaging_publish",
    flag: "messaging-publish",
    value_name: "PATTERN[=STORE]",
    help: "Let the component send wasi:messaging messages to subjects matching PATTERN (NATS wildcards \
           `*`, `>`), on the store `default` (in-process) or STORE from `--runtime-config`.",
};

const SUBSCRIBE: GrantKey = GrantKey {
    key: "messaging_subscribe",
    flag: "messaging-subscribe",
    value_name: "PATTERN[=STORE]",
    help: "Let message triggers deliver messages on subjects matching PATTERN to the component.",
};

impl Capability for MessagingCapability {
    const NAME: &'static str = "messaging";
    const GRANTS: &'static [GrantKey] = &[PUBLISH, SUBSCRIBE];
    const INTERFACES: &'static [&'static str] = &[
        "wasi:messaging/types@0.2.0-draft",
        "wasi:messaging/producer@0.2.0-draft",
        "wasi:messaging/request-reply@0.2.0-draft",
    ];

    type Grant = MessagingGrant;
    type RuntimeConfig = MessagingConfig;
    type Backends = Stores;
    type Bound = MessagingCtx;
    type State = Arc<MessagingCtx>;

    fn parse_grant(key: &GrantKey, text: &str) -> Result<MessagingGrant, String> {
        let direction = if key.key == SUBSCRIBE.key { Direction::Subscribe } else { Direction::Publish };
        MessagingGrant::parse(direction, text)
    }

    fn grant_name(grant: &MessagingGrant) -> &str {
        &grant.name
    }

    fn backends(config: MessagingConfig, context: &RuntimeContext) -> Result<Stores, String> {
        let mut stores = BTreeMap::new();
        stores.insert(DEFAULT_STORE.to_owned(), Arc::new(Broker::Memory(MemoryBroker::default())));
        for (name, store) in config.stores {
            let broker = match store {
                StoreConfig::Memory => Broker::Memory(MemoryBroker::default()),
                StoreConfig::Nats { url, token, user, password, creds } => {
                    if url.trim().is_empty() {
                        return Err(format!("stores.{name}: `url` must not be empty"));
                    }
                    if user.is_some() != password.is_some() {
                        return Err(format!("stores.{name}: `user` and `password` go together"));
                    }
                    let creds = creds.map(|path| context.base.join(path));
                    Broker::Nats(Box::new(NatsBroker::new(url, NatsAuth { token, user, password, creds })))
                }
            };
            stores.insert(name, Arc::new(broker));
        }
        Ok(Stores(stores))
    }

    fn bind(
        stores: &Stores,
        grants: Vec<MessagingGrant>,
        _host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<MessagingCtx, String> {
        let mut brokers = BTreeMap::new();
        for grant in &grants {
            let Some(broker) = stores.broker(&grant.store) else {
                return Err(format!(
                    "cannot grant messaging subjects `{}`: no store named `{}` is configured (known: {})",
                    grant.pattern,
                    grant.store,
                    stores.known()
                ));
            };
            brokers.insert(grant.store.clone(), broker.clone());
        }
        Ok(MessagingCtx { grants, brokers })
    }

    fn state(bound: &Arc<MessagingCtx>) -> Arc<MessagingCtx> {
        bound.clone()
    }

    fn add_to_linker<T: HasCapability<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::add_to_linker(linker, view::<T>)
    }
}

fn view<T: HasCapability<MessagingCapability>>(data: &mut T) -> crate::Messaging<'_> {
    let parts = data.capability();
    crate::Messaging::new(parts.state, parts.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants() {
        let g = MessagingGrant::parse(Direction::Publish, "orders.*=nats").unwrap();
        assert_eq!((g.pattern.as_str(), g.store.as_str()), ("orders.*", "nats"));
        assert_eq!(MessagingGrant::parse(Direction::Subscribe, "a.>").unwrap().store, "default");
        for bad in ["", "a b", "a.>.b", "a=", "a=b c", "a\r\nPUB"] {
            assert!(MessagingGrant::parse(Direction::Publish, bad).is_err(), "{bad:?}");
        }
        let ctx = MessagingCtx { grants: vec![g], brokers: BTreeMap::new() };
        assert!(ctx.allows(Direction::Publish, "nats", "orders.new"));
        assert!(!ctx.allows(Direction::Publish, "default", "orders.new"));
        assert!(!ctx.allows(Direction::Subscribe, "nats", "orders.new"));
        assert!(!ctx.allows(Direction::Publish, "nats", "orders.>"));
    }
}
