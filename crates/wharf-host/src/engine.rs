//! The wasmtime [`Engine`]s of a Wharf process (one without and one with component-model
//! concurrency, see [`EngineKind`]) and the epoch ticker that makes timeouts work.
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the engine's epoch advances; the granularity of every timeout.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Options that shape the engine. Anything that changes compiled code also changes
/// [`WharfEngine::fingerprint`], so the compile cache keeps entries apart.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Use the pooling instance allocator, sized like this (for servers that instantiate per
    /// request: slots are reused and memories are reset copy-on-write).
    pub pooling: Option<PoolOptions>,
}

/// How large the instance pool is.
#[derive(Clone, Copy, Debug)]
pub struct PoolOptions {
    /// Component instances alive at once (one per in-flight request).
    pub instances: u32,
    /// The largest linear memory any instance may grow to.
    pub max_memory: u64,
    /// On the synchronous engine, initialise each linear memory by copying its data segments
    /// at instantiation instead of mapping a copy-on-write image of them. For components whose
    /// data is small (see [`COPY_DATA_UP_TO`] and [`crate::data_segment_bytes`]) this is
    /// cheaper per instance: a guest that first reads, then writes a page of its image (its
    /// `.data`/`.bss`) takes two faults, and the write's copy-on-write sends a TLB-shootdown
    /// IPI to every other core running the process; a page the host filled is written already.
    /// The reset is unchanged (every byte decommitted, so zero, or copied again).
    pub copy_data: bool,
}

/// Data-segment bytes up to which `wharf serve` sets [`PoolOptions::copy_data`]. Measured
/// for an 8 KiB image only (BENCHMARKS.md, stop 16: one IPI fewer per request, +5-10%); 64 KiB
/// is a bound, not a measured break-even: at most 16 pages copied and faulted in (first-write
/// faults, no IPI) per instance. A larger image (an interpreter's, megabytes) would be copied
/// whole for every request, so it keeps copy-on-write.
pub const COPY_DATA_UP_TO: u64 = 64 << 10;

/// Which of a process's two engines a component is compiled for and runs on.
///
/// Concurrency support (the component-model async ABI that WASI 0.3 is built on) makes every
/// store and every call pay for its task bookkeeping, async ABI or not: a plain synchronous
/// WASI 0.2 component served ~15-20% fewer requests per second on an engine that has it
/// (BENCHMARKS.md, stop 14). So such components get an engine without it, and only those
/// that need it the concurrent one (see `crate::abi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// No component-model concurrency: synchronous WASI 0.2 components.
    Sync,
    /// Component-model async: WASI 0.3, the async ABI in any world, and instances that serve
    /// several requests through wasmtime-wasi-http's event loop.
    Concurrent,
}

impl EngineKind {
    /// The name used in compile-cache keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Sync => "sync",
            EngineKind::Concurrent => "concurrent",
        }
    }
}

/// A handle on the process's engines (epoch interruption on, one ticker thread for all),
/// pinned to one [`EngineKind`]: [`WharfEngine::engine`] is that kind's engine. The concurrent
/// engine is created on first use ([`WharfEngine::with_kind`]), so a process that runs only
/// synchronous components never reserves its instance pool. Clones share the engines.
#[derive(Clone)]
pub struct WharfEngine {
    shared: Arc<Shared>,
    kind: EngineKind,
}

struct Shared {
    options: EngineOptions,
    sync: Engine,
    concurrent: OnceLock<Engine>,
    // Held while the concurrent engine is created, so two loads never build (and reserve a
    // pool for) two of them.
    creating: Mutex<()>,
}

impl WharfEngine {
    /// Creates the synchronous engine and starts the epoch ticker thread (it stops when the
    /// last clone drops). The handle is pinned to [`EngineKind::Sync`].
    pub fn new(options: &EngineOptions) -> wasmtime::Result<Self> {
        let shared = Arc::new(Shared {
            options: options.clone(),
            sync: build(options, EngineKind::Sync)?,
            concurrent: OnceLock::new(),
            creating: Mutex::new(()),
        });
        let ticking: Weak<Shared> = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    let Some(shared) = ticking.upgrade() else { break };
                    shared.sync.increment_epoch();
                    if let Some(engine) = shared.concurrent.get() {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker thread: {e}"))?;
        Ok(WharfEngine { shared, kind: EngineKind::Sync })
    }

    /// The same engines pinned to `kind`, creating the concurrent engine (same options) if
    /// this is its first use.
    pub fn with_kind(&self, kind: EngineKind) -> wasmtime::Result<Self> {
        if kind == EngineKind::Concurrent && self.shared.concurrent.get().is_none() {
            let _creating = self.shared.creating.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if self.shared.concurrent.get().is_none() {
                tracing::debug!("creating the concurrent engine");
                let engine = build(&self.shared.options, EngineKind::Concurrent)?;
                let _ = self.shared.concurrent.set(engine);
            }
        }
        Ok(WharfEngine { shared: self.shared.clone(), kind })
    }

    /// The same engines pinned to the kind that compiled `component`, so that its stores are
    /// made on its engine. A component of another process's engine keeps this handle's kind
    /// (wasmtime then refuses to instantiate it).
    pub fn for_component(&self, component: &Component) -> Self {
        let kind = if Engine::same(component.engine(), &self.shared.sync) {
            EngineKind::Sync
        } else if self.shared.concurrent.get().is_some_and(|e| Engine::same(component.engine(), e)) {
            EngineKind::Concurrent
        } else {
            self.kind
        };
        WharfEngine { shared: self.shared.clone(), kind }
    }

    /// Whether the concurrent engine has been created.
    #[cfg(test)]
    pub(crate) fn has_concurrent(&self) -> bool {
        self.shared.concurrent.get().is_some()
    }

    /// Which engine this handle is pinned to.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// The wasmtime engine of this handle's kind.
    pub fn engine(&self) -> &Engine {
        match self.kind {
            EngineKind::Sync => &self.shared.sync,
            // A concurrent handle is only made by `with_kind`/`for_component`, after creation.
            EngineKind::Concurrent => self.shared.concurrent.get().expect("the concurrent engine exists"),
        }
    }

    /// A hex string that changes whenever compiled code from this handle's engine would not
    /// load in another (wasmtime version, target, tunables, features, and the [`EngineKind`]
    /// itself, so an artifact of one kind is never even looked up for the other).
    pub fn fingerprint(&self) -> String {
        use std::hash::Hash;
        let mut hasher = Sha256Hasher(sha2::Sha256::default());
        self.engine().precompile_compatibility_hash().hash(&mut hasher);
        self.kind.as_str().hash(&mut hasher);
        let digest = sha2::Digest::finalize(hasher.0);
        hex::encode(&digest[..12])
    }
}

/// One engine of `kind` with `options`.
fn build(options: &EngineOptions, kind: EngineKind) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // Off, the component-model async features are off too (wasmtime's default follows it).
    config.concurrency_support(kind == EngineKind::Concurrent);
    if let Some(pool) = options.pooling {
        // The concurrent engine's instances are reused across requests: its images stay.
        if pool.copy_data && kind == EngineKind::Sync {
            config.memory_init_cow(false);
        }
        // A Rust wasip2 component is a handful of core instances with a few memories and
        // tables; leave room for components larger than that.
        let mut pooling = wasmtime::PoolingAllocationConfig::new();
        pooling
            .total_component_instances(pool.instances)
            .total_core_instances(pool.instances.saturating_mul(10))
            .total_memories(pool.instances.saturating_mul(2))
            .total_tables(pool.instances.saturating_mul(4))
            .total_stacks(pool.instances)
            .max_memory_size(usize::try_from(pool.max_memory).unwrap_or(usize::MAX))
            .max_unused_warm_slots(pool.instances.min(100))
            // Fewer madvise calls per request: each one costs a TLB shootdown on every core
            // running the process, the largest cost of instance-per-request serving. Small
            // tables are reset with memset instead, and the decommits are batched (measured
            // in BENCHMARKS.md).
            .table_keep_resident(64 << 10)
            .linear_memory_keep_resident(memory_keep_resident(kind))
            .decommit_batch_size((pool.instances as usize / 8).clamp(1, 32));
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    Engine::new(&config)
}

/// Bytes at the start of each linear memory reset with memset (kept resident) instead of
/// decommitted when a pooled instance is freed.
///
/// None on the synchronous engine, whose WASI 0.2 HTTP components get a fresh instance per
/// request: wasmtime always decommits a memory's data image (whatever this says), so all it
/// keeps resident is zero-initialised memory in the first bytes, and in the usual layout
/// (rustc links `--stack-first`: 1 MiB of stack growing down from 1 MiB, data above it) those
/// are the deepest stack pages, which a request never touches. The memset of 64 KiB of them
/// was ~3% of a hello request's CPU (callgrind: 64 KiB stored per request, 30% of the
/// request's user-space instructions), for no fault saved. Leaving it out does not weaken
/// the reset: every byte of the memory is still zeroed or restored before the slot is reused.
/// The concurrent engine keeps the 64 KiB (its WASI 0.3 instances are reused across
/// requests, so it resets rarely; left as measured).
fn memory_keep_resident(kind: EngineKind) -> usize {
    match kind {
        EngineKind::Sync => 0,
        EngineKind::Concurrent => 64 << 10,
    }
}

/// Feeds `Hash` output into SHA-256 so the fingerprint is stable across builds and platforms,
/// unlike `DefaultHasher`.
struct Sha256Hasher(sha2::Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }
}
