//! Turns a [`Policy`] into a store: the WASI context (args, env, preopens, socket checks) and
//! the resource limits every instance runs under.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capabilities::{Backends, Bound, States};
use crate::dns::Dns;
use crate::engine::WharfEngine;
use crate::guest_log::LogStream;
use crate::guest_net::GuestNet;
use crate::outbound::OutboundHttp;
use crate::p2_lookup::LookupView;
use crate::policy::{DirGrant, NetGrants, Policy};

/// Caps on things a policy does not mention, so that no guest can exhaust the host with
/// tables, instances or host resources either.
pub(crate) const MAX_INSTANCES: usize = 1_000;
pub(crate) const MAX_TABLES: usize = 1_000;
pub(crate) const MAX_MEMORIES: usize = 100;
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Live entries in a store's host [`ResourceTable`] (streams, pollables, descriptors, HTTP
/// fields, requests and bodies the guest holds). wasmtime's defaults (1,000,000 entries, and
/// 100,000 guest handles per store) bound the count, not the bytes: hoarded `wasi:http` fields
/// filled to their 128 KiB limit cost wharf 120 KiB each (measured), 12 GB at 100,000, and
/// unsent outgoing bodies 2 MiB each. Real guests hold tens to hundreds (Unix's default
/// open-file limit is 1,024); 4,096 keeps the worst case near the default memory limit:
/// 4,096 x 128 KiB = 512 MiB of fields (555 MiB peak RSS measured), bodies less with
/// [`crate::outbound`]'s chunk size. Past it the host call fails and the guest is stopped.
pub(crate) const MAX_RESOURCES: usize = 4_096;

/// A grant in the policy that cannot be put in place on this host.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A `--dir` host directory is missing or unreadable.
    #[error("cannot grant directory {}: {reason}", grant.host.display())]
    Dir {
        /// The grant as parsed.
        grant: DirGrant,
        /// Why the directory could not be opened.
        reason: String,
    },
    /// One grant's directory lies inside another's that the guest may write: the guest could
    /// rename the inner directory and put a symlink in its place.
    #[error(
        "--dir {} lies inside read-write --dir {}: overlapping grants are refused (grant them as one, or make the outer one :ro)",
        inner.host.display(),
        outer.host.display()
    )]
    Overlap {
        /// The read-write grant.
        outer: DirGrant,
        /// The grant inside it.
        inner: DirGrant,
    },
    /// A grant of one component lies inside another component's read-write grant (`wharf serve`
    /// with a `wharf.toml`, `wharf mcp` with several components): that component could rename
    /// the other's directory, and every host tool or later start would follow the change.
    #[error(
        "component {inner_component}'s directory {} lies inside component {outer_component}'s read-write directory {}: \
         grants shared across components must be the same directory or read-only",
        inner.host.display(),
        outer.host.display()
    )]
    SharedOverlap {
        /// The component holding the read-write grant.
        outer_component: String,
        /// Its read-write grant (boxed: keeps every `Result<_, SandboxError>` small).
        outer: Box<DirGrant>,
        /// The component whose grant lies inside.
        inner_component: String,
        /// That grant.
        inner: Box<DirGrant>,
    },
    /// A capability cannot honour a grant, e.g. a `--kv` bucket mapped to a store that is not
    /// configured. The reason names the grant.
    #[error("{0}")]
    Grant(String),
}

/// Opens a grant's directory once, after resolving the path the user gave (symlinks in it
/// included) once; returns the real path and the open directory. Refuses if this host cannot
/// reopen the directory through `/proc/self/fd` (stores are built that way).
fn open_grant(grant: &DirGrant) -> Result<(PathBuf, File), SandboxError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |reason: String| SandboxError::Dir { grant: grant.clone(), reason };
    let real = std::fs::canonicalize(&grant.host).map_err(|e| fail(e.to_string()))?;
    // O_NOFOLLOW: the canonical path has no symlink left, unless one was just swapped in.
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| fail(e.to_string()))?;
    let opened = dir.metadata().map_err(|e| fail(e.to_string()))?;
    let reopened = std::fs::read_dir(fd_path(&dir)).and_then(|_| std::fs::metadata(fd_path(&dir)));
    match reopened {
        Ok(m) if m.dev() == opened.dev() && m.ino() == opened.ino() => Ok((real, dir)),
        _ => Err(fail(format!(
            "cannot reopen it through {} (wharf needs a Linux /proc to hold directory grants in place)",
            fd_path(&dir).display()
        ))),
    }
}

/// The path that reopens `dir` itself, wherever it has been moved since.
fn fd_path(dir: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

/// Refuses a grant whose real directory lies strictly inside a read-write grant's: the guest
/// could rename the inner directory (and, across components, other guests see the change).
/// `grants` pairs each grant with its canonical host path; pass several sandboxes' grants to
/// check across components.
fn check_overlaps<'a>(grants: impl IntoIterator<Item = (&'a DirGrant, &'a Path)> + Clone) -> Result<(), SandboxError> {
    for (outer, outer_real) in grants.clone() {
        if outer.read_only {
            continue;
        }
        for (inner, inner_real) in grants.clone() {
            if inner_real != outer_real && inner_real.starts_with(outer_real) {
                return Err(SandboxError::Overlap { outer: outer.clone(), inner: inner.clone() });
            }
        }
    }
    Ok(())
}

/// What a guest's stdio is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// The host process's stdin, stdout and stderr (for `wharf run`).
    Inherit,
    /// Closed stdin; stdout and stderr go to the host's (for servers).
    InheritOutput,
    /// Closed stdin; output discarded.
    Null,
    /// Closed stdin; output becomes `wharf::guest` log lines (bounded), for servers whose
    /// stdout is a protocol stream.
    Log,
}

/// A policy made ready to build stores from: environment resolved, directories checked. Build
/// one per component and reuse it for every instance.
#[derive(Clone, Debug)]
pub struct Sandbox {
    env: Vec<(String, String)>,
    // Each grant with its directory, opened once: stores reach it through `/proc/self/fd/N`,
    // never through its path again, so a guest that renames a directory and puts a symlink in
    // its place cannot move a grant.
    // The real path each was opened at is kept to compare grants across components.
    dirs: Vec<(DirGrant, PathBuf, Arc<File>)>,
    net: Arc<NetGrants>,
    dns: Dns,
    max_memory: u64,
    timeout: Option<Duration>,
    // Every capability's grants, bound to the process's backends.
    capabilities: Bound,
    // Names the component in logged guest output.
    label: Arc<str>,
}

impl Sandbox {
    /// Prepares `policy`, binding its capability grants (key-value buckets, config, ...) to
    /// `backends`; `host_env` looks up inherited environment variables.
    pub fn new(
        policy: &Policy,
        backends: &Backends,
        host_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SandboxError> {
        let mut dirs = Vec::with_capacity(policy.dirs.len());
        for grant in &policy.dirs {
            let (real, dir) = open_grant(grant)?;
            dirs.push((grant.clone(), real, Arc::new(dir)));
        }
        check_overlaps(dirs.iter().map(|(grant, real, _)| (grant, real.as_path())))?;
        Ok(Sandbox {
            env: policy.resolved_env(&host_env),
            dirs,
            net: Arc::new(NetGrants::new(&policy.allow_net)),
            dns: Dns::system(),
            max_memory: policy.memory_limit(),
            timeout: policy.timeout,
            capabilities: Bound::new(backends, &policy.grants, &host_env).map_err(SandboxError::Grant)?,
            label: "guest".into(),
        })
    }

    /// Refuses directory grants of different components (the sandboxes of one `wharf.toml`, or
    /// of `wharf mcp`'s components) where one lies strictly inside another's read-write grant,
    /// compared by the real paths the sandboxes opened. The same directory granted to several
    /// components is allowed, read-write too: each holds its root open, and no guest can rename
    /// a grant's root. `components` pairs each sandbox with the component's name.
    pub fn check_shared_dirs<'a>(
        components: impl IntoIterator<Item = (&'a str, &'a Sandbox)>,
    ) -> Result<(), SandboxError> {
        let all: Vec<(&str, &DirGrant, &Path)> = components
            .into_iter()
            .flat_map(|(name, sandbox)| sandbox.dirs.iter().map(move |(grant, real, _)| (name, grant, real.as_path())))
            .collect();
        for (outer_name, outer, outer_real) in &all {
            if outer.read_only {
                continue;
            }
            for (inner_name, inner, inner_real) in &all {
                if inner_name != outer_name && inner_real != outer_real && inner_real.starts_with(outer_real) {
                    return Err(SandboxError::SharedOverlap {
                        outer_component: outer_name.to_string(),
                        outer: Box::new((*outer).clone()),
                        inner_component: inner_name.to_string(),
                        inner: Box::new((*inner).clone()),
                    });
                }
            }
        }
        Ok(())
    }

    /// Names the component in logs of its output ([`Stdio::Log`]).
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = label.into();
        self
    }

    /// Resolves the names the guest looks up (and outbound HTTP hosts) through `dns` instead of
    /// the system resolver.
    pub fn with_dns(mut self, dns: Dns) -> Self {
        self.dns = dns;
        self
    }

    /// The wall-clock budget of one instance's work, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The memory ceiling in bytes.
    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// A fresh store for one instance: WASI context from the policy, limits, epoch deadline.
    pub fn store(&self, engine: &WharfEngine, args: &[String], stdio: Stdio) -> Result<Store<HostState>, SandboxError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(args).envs(&self.env);
        let mut stderr = None;
        match stdio {
            Stdio::Inherit => drop(wasi.inherit_stdio()),
            Stdio::InheritOutput => drop(wasi.inherit_stdout().inherit_stderr()),
            Stdio::Null => {}
            Stdio::Log => {
                wasi.stdout(LogStream::new(self.label.clone(), "stdout"));
                let stream = LogStream::new(self.label.clone(), "stderr");
                stderr = Some(stream.clone());
                wasi.stderr(stream);
            }
        }
        for (grant, _, dir) in &self.dirs {
            let perms = if grant.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            wasi.preopened_dir(fd_path(dir), &grant.guest, perms)
                .map_err(|e| SandboxError::Dir { grant: grant.clone(), reason: format!("{e:#}") })?;
        }
        // Lookups go through `net` (see `crate::p2_lookup`); wasmtime-wasi's own resolver,
        // which answers any name, stays off.
        let net = Arc::new(GuestNet::new(self.net.clone(), self.dns.clone()));
        wasi.allow_ip_name_lookup(false);
        wasi.allow_tcp(self.net.has_sockets());
        wasi.allow_udp(self.net.has_sockets());
        let check = net.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let allowed = check.allows_socket(addr, use_);
            Box::pin(async move { allowed })
        });

        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.max_memory).unwrap_or(usize::MAX))
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(MAX_INSTANCES)
            .tables(MAX_TABLES)
            .memories(MAX_MEMORIES)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = HostState {
            wasi: wasi.build(),
            table,
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(net.clone()),
            net,
            limits: Limits { inner: limits, memory_denied: false, table_denied: None },
            capabilities: self.capabilities.states(),
            deadline: None,
            stderr,
            extension: None,
        };
        let mut store = Store::new(engine.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Every epoch tick the guest yields to the async runtime, so a spinning guest cannot
        // starve other requests on the same worker thread; past its deadline it is interrupted.
        self.restart_deadline(&mut store);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| match store.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        Ok(store)
    }

    /// Gives the store a full timeout again from now: for a store that serves several calls
    /// (one instance per MCP session), where the timeout bounds each call.
    pub fn restart_deadline(&self, store: &mut Store<HostState>) {
        store.data_mut().deadline = self.timeout.map(|timeout| Instant::now() + timeout);
    }

    /// Takes the store's deadline away (guest code still yields every epoch tick): for a
    /// reused HTTP instance, whose requests are timed one by one by the server instead.
    pub fn clear_deadline(store: &mut Store<HostState>) {
        store.data_mut().deadline = None;
    }
}

/// Per-instance host state: the WASI and wasi:http contexts, the resource table and the limiter.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: OutboundHttp,
    net: Arc<GuestNet>,
    limits: Limits,
    // Every capability's per-store state (see `crate::capabilities`).
    capabilities: States,
    // When the running call is interrupted; `None` runs unbounded.
    deadline: Option<Instant>,
    // The guest's stderr when it is logged ([`Stdio::Log`]): its last lines explain a trap.
    stderr: Option<LogStream>,
    // An embedder's per-store data for host interfaces of its own (wharf-mcp's
    // `wharf:mcp/context`); wharf-host only keeps it.
    extension: Option<Box<dyn std::any::Any + Send>>,
}

impl HostState {
    /// Whether the guest asked for more memory than the policy allows (and was refused).
    pub fn memory_denied(&self) -> bool {
        self.limits.memory_denied
    }

    /// The last lines the guest wrote to stderr (a panic's location and text), joined into one
    /// line; only for stores whose output is logged ([`Stdio::Log`]).
    pub fn stderr_tail(&self) -> Option<String> {
        self.stderr.as_ref().and_then(LogStream::tail)
    }

    /// Sets or clears the embedder's per-store data, read back by [`HostState::extension`] in
    /// the host functions it added to the linkers ([`crate::Host::extend_linkers`]).
    pub fn set_extension(&mut self, data: Option<Box<dyn std::any::Any + Send>>) {
        self.extension = data;
    }

    /// The embedder's per-store data, if there is some and it is a `T`.
    pub fn extension<T: std::any::Any>(&mut self) -> Option<&mut T> {
        self.extension.as_mut()?.downcast_mut()
    }

    /// The table size (in elements) the guest asked for beyond wharf's cap, if it was refused.
    pub fn table_denied(&self) -> Option<usize> {
        self.limits.table_denied
    }

    /// The `wasi:sockets/ip-name-lookup` view: lookups through the store's [`GuestNet`].
    pub(crate) fn lookups(&mut self) -> LookupView<'_> {
        LookupView { net: &self.net, table: &mut self.table }
    }

    /// The store's network checks (WASI 0.3's `ip-name-lookup`, see `crate::p3_lookup`).
    pub(crate) fn guest_net(&mut self) -> &Arc<GuestNet> {
        &self.net
    }

    /// The capabilities' states beside the resource table they share with WASI.
    pub(crate) fn capabilities(&mut self) -> (&mut States, &mut ResourceTable) {
        (&mut self.capabilities, &mut self.table)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

/// [`StoreLimits`] that also remember a refused memory or table growth, so a later trap can be
/// reported as "memory limit exceeded" rather than as a bare `unreachable`.
struct Limits {
    inner: StoreLimits,
    memory_denied: bool,
    table_denied: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            tracing::debug!(current, desired, "memory growth denied by policy");
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum)?;
        // Only wharf's cap is named: growth refused below it (past the table's own declared
        // maximum, or past a pooled slot's capacity under `serve`) is an ordinary `table.grow`
        // failure, -1 to the guest.
        if !allowed && desired > MAX_TABLE_ELEMENTS {
            tracing::debug!(current, desired, "table growth denied by policy");
            self.table_denied = Some(desired);
        }
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
