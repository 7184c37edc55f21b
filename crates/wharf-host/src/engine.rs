//! The one wasmtime [`Engine`] of a Wharf process, and the epoch ticker that makes timeouts work.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
}

/// A shared engine with epoch interruption enabled and a background ticker.
#[derive(Clone)]
pub struct WharfEngine {
    engine: Engine,
    _ticker: Arc<Ticker>,
}

struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl WharfEngine {
    /// Creates the engine and starts its epoch ticker thread (stopped when the last clone drops).
    pub fn new(options: &EngineOptions) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if let Some(pool) = options.pooling {
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
                // tables and the first 64 KiB of each memory are reset with memset instead, and
                // the remaining decommits are batched (measured in BENCHMARKS.md).
                .table_keep_resident(64 << 10)
                .linear_memory_keep_resident(64 << 10)
                .decommit_batch_size((pool.instances as usize / 8).clamp(1, 32));
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        }
        let engine = Engine::new(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking_engine, ticking_stop) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                while !ticking_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticking_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker thread: {e}"))?;
        Ok(WharfEngine { engine, _ticker: Arc::new(Ticker(stop)) })
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A hex string that changes whenever compiled code from this engine would not load in
    /// another (wasmtime version, target, tunables, features).
    pub fn fingerprint(&self) -> String {
        use std::hash::Hash;
        let mut hasher = Sha256Hasher(sha2::Sha256::default());
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = sha2::Digest::finalize(hasher.0);
        hex::encode(&digest[..12])
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
