//! The resolver guests' lookups and outbound HTTP go through: the system's, or in debug builds
//! (what the test suite runs) a table from `WHARF_TEST_RESOLVE`, so tests can make a name
//! answer any address, hang, or fail, without touching `/etc/hosts` or a DNS server.
//!
//! `WHARF_TEST_RESOLVE="api.test=127.0.0.1,::1 *.wild.test=127.0.0.1 slow.test=stall"`: names
//! (or `*.suffix` for any name below it) and their addresses; `stall` blocks the lookup for
//! [`STALL`] and then fails. Names not listed go to the system resolver. With
//! `WHARF_TEST_RESOLVE_LOG=FILE`, every name queried is appended to FILE, one a line, so a test
//! can tell that no query was made. Release builds ignore both variables.
use std::sync::{Arc, OnceLock};

use wharf_host::dns::Dns;

/// How long a `stall` entry blocks a lookup.
#[cfg(debug_assertions)]
const STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// The process's [`Dns`], built once.
pub fn dns() -> Dns {
    static DNS: OnceLock<Dns> = OnceLock::new();
    DNS.get_or_init(|| {
        #[cfg(debug_assertions)]
        if let Ok(table) = std::env::var("WHARF_TEST_RESOLVE") {
            let log = std::env::var_os("WHARF_TEST_RESOLVE_LOG").map(std::path::PathBuf::from);
            match test::Table::parse(&table, log) {
                Ok(table) => return Dns::new(Arc::new(table)),
                Err(e) => tracing::error!("WHARF_TEST_RESOLVE ignored: {e}"),
            }
        }
        Dns::new(Arc::new(wharf_host::dns::SystemResolver))
    })
    .clone()
}

#[cfg(debug_assertions)]
mod test {
    use std::io::Write;
    use std::net::IpAddr;
    use std::path::PathBuf;

    use wharf_host::dns::{Resolver, SystemResolver};

    enum Answer {
        Addresses(Vec<IpAddr>),
        Stall,
    }

    /// The `WHARF_TEST_RESOLVE` table.
    pub(super) struct Table {
        entries: Vec<(String, Answer)>,
        log: Option<PathBuf>,
    }

    impl Table {
        pub(super) fn parse(text: &str, log: Option<PathBuf>) -> Result<Self, String> {
            let mut entries = Vec::new();
            for entry in text.split_whitespace() {
                let (name, answer) = entry.split_once('=').ok_or_else(|| format!("`{entry}`: expected NAME=ADDR"))?;
                let answer = match answer {
                    "stall" => Answer::Stall,
                    list => Answer::Addresses(
                        list.split(',')
                            .map(|a| a.parse().map_err(|_| format!("`{entry}`: `{a}` is not an IP address")))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                entries.push((name.to_ascii_lowercase(), answer));
            }
            Ok(Table { entries, log })
        }

        fn find(&self, name: &str) -> Option<&Answer> {
            self.entries.iter().find_map(|(pattern, answer)| {
                let hit = match pattern.strip_prefix('*') {
                    Some(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
                    None => pattern == name,
                };
                hit.then_some(answer)
            })
        }
    }

    impl Resolver for Table {
        fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
            if let Some(path) = &self.log
                && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
            {
                let _ = writeln!(file, "{name}");
            }
            match self.find(name) {
                Some(Answer::Addresses(addresses)) => Ok(addresses.clone()),
                Some(Answer::Stall) => {
                    std::thread::sleep(super::STALL);
                    Err(std::io::Error::other("stalled"))
                }
                None => SystemResolver.lookup(name),
            }
        }
    }
}
