//! [`Sandbox::call`] on real instances of a small component: each way a call can end is
//! classified into its [`RunError`], with the text every subcommand shows.
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{Component, Instance, Linker};

use super::RunError;
use crate::sandbox::HostState;
use crate::{Backends, EngineOptions, Policy, PoolOptions, Sandbox, Stdio, WharfEngine};

/// One export per way to end: returning, trapping, spinning, blocking in a host call, growing
/// memory or a table past wharf's limits, and a host call that fails.
const GUEST: &str = r#"
(component
  (import "block" (func $block))
  (import "fail" (func $fail))
  (core module $m
    (import "host" "block" (func $block))
    (import "host" "fail" (func $fail))
    (memory 1)
    (table 1 funcref)
    (func (export "answer") (result i32) i32.const 42)
    (func (export "trap") unreachable)
    (func (export "spin") (loop br 0))
    (func (export "block") call $block)
    (func (export "fail") call $fail)
    (func (export "grow")
      (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable)))
    (func (export "grow-table")
      (if (i32.eq (table.grow (ref.null func) (i32.const 2000000)) (i32.const -1)) (then unreachable))))
  (core func $block (canon lower (func $block)))
  (core func $fail (canon lower (func $fail)))
  (core instance $host (export "block" (func $block)) (export "fail" (func $fail)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func (export "answer") (result u32) (canon lift (core func $i "answer")))
  (func (export "trap") (canon lift (core func $i "trap")))
  (func (export "spin") (canon lift (core func $i "spin")))
  (func (export "block") (canon lift (core func $i "block")))
  (func (export "fail") (canon lift (core func $i "fail")))
  (func (export "grow") (canon lift (core func $i "grow")))
  (func (export "grow-table") (canon lift (core func $i "grow-table"))))
"#;

struct Guest {
    engine: WharfEngine,
    component: Component,
    linker: Linker<HostState>,
    sandbox: Sandbox,
    _data: tempfile::TempDir,
}

impl Guest {
    fn new(options: &EngineOptions, timeout: Option<Duration>) -> Self {
        let engine = WharfEngine::new(options).unwrap();
        let component = Component::new(engine.engine(), wat::parse_str(GUEST).unwrap()).unwrap();
        let mut linker = Linker::new(engine.engine());
        // Blocks forever without running guest code: only the wall clock can end the call.
        linker
            .root()
            .func_wrap_async("block", |_, (): ()| Box::new(std::future::pending::<wasmtime::Result<()>>()))
            .unwrap();
        linker
            .root()
            .func_wrap_async("fail", |_, (): ()| {
                Box::new(async {
                    Err::<(), _>(wasmtime::format_err!("disk on fire\nsecond line").context("writing the log"))
                })
            })
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let backends = Backends::defaults(data.path()).unwrap();
        let policy = Policy { timeout, max_memory: Some(2 << 20), ..Policy::default() };
        let sandbox = Sandbox::new(&policy, &backends, |_| None).unwrap();
        Guest { engine, component, linker, sandbox, _data: data }
    }

    fn store(&self) -> Store<HostState> {
        self.sandbox.store(&self.engine, &[], Stdio::Null).unwrap()
    }

    async fn instantiate(&self, store: &mut Store<HostState>) -> Result<Instance, RunError> {
        self.sandbox.call(store, async |store| self.linker.instantiate_async(store, &self.component).await).await
    }

    /// Instantiates in a fresh store and calls `name`.
    async fn call(&self, name: &str) -> Result<(), RunError> {
        let mut store = self.store();
        let instance = self.instantiate(&mut store).await?;
        self.sandbox
            .call(&mut store, async |store| {
                let func = instance.get_typed_func::<(), ()>(&mut *store, name)?;
                func.call_async(store, ()).await
            })
            .await
    }
}

#[tokio::test]
async fn a_value_passes_through() {
    let guest = Guest::new(&EngineOptions::default(), Some(Duration::from_secs(5)));
    let mut store = guest.store();
    let instance = guest.instantiate(&mut store).await.unwrap();
    let answer = guest
        .sandbox
        .call(&mut store, async |store| {
            let func = instance.get_typed_func::<(), (u32,)>(&mut *store, "answer")?;
            func.call_async(store, ()).await
        })
        .await
        .unwrap();
    assert_eq!(answer, (42,));
}

#[tokio::test]
async fn a_trap_is_a_trap() {
    let guest = Guest::new(&EngineOptions::default(), None);
    let error = guest.call("trap").await.unwrap_err();
    assert!(matches!(error, RunError::Trap(_)), "{error:?}");
    assert_eq!(error.to_string(), "guest trapped: wasm trap: wasm `unreachable` instruction executed");
}

#[tokio::test]
async fn spinning_past_the_timeout_is_a_timeout() {
    let guest = Guest::new(&EngineOptions::default(), Some(Duration::from_millis(200)));
    let start = Instant::now();
    let error = guest.call("spin").await.unwrap_err();
    assert!(matches!(error, RunError::Timeout(t) if t == Duration::from_millis(200)), "{error:?}");
    assert_eq!(error.to_string(), "guest timed out after 200ms");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

#[tokio::test]
async fn blocked_in_a_host_call_past_the_timeout_is_a_timeout() {
    let guest = Guest::new(&EngineOptions::default(), Some(Duration::from_millis(200)));
    let error = guest.call("block").await.unwrap_err();
    assert!(matches!(error, RunError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn the_timeout_is_per_call_on_a_kept_store() {
    // Three calls of 150 ms each on one store with a 300 ms timeout: none times out.
    let guest = Guest::new(&EngineOptions::default(), Some(Duration::from_millis(300)));
    let mut store = guest.store();
    let instance = guest.instantiate(&mut store).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let answer = async |store: &mut Store<HostState>| {
            instance.get_typed_func::<(), (u32,)>(&mut *store, "answer")?.call_async(store, ()).await
        };
        guest.sandbox.call(&mut store, answer).await.unwrap();
    }
    // The deadline is the epoch's too: spinning on the same store still ends.
    let spin = async |store: &mut Store<HostState>| {
        instance.get_typed_func::<(), ()>(&mut *store, "spin")?.call_async(store, ()).await
    };
    let error = guest.sandbox.call(&mut store, spin).await.unwrap_err();
    assert!(matches!(error, RunError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn the_epoch_interrupt_is_a_timeout_only_under_a_timeout() {
    let timed = Guest::new(&EngineOptions::default(), Some(Duration::from_secs(1)));
    let store = timed.store();
    let interrupt = wasmtime::Error::new(wasmtime::Trap::Interrupt);
    assert!(matches!(timed.sandbox.failure(&interrupt, store.data()), RunError::Timeout(_)));
    let untimed = Guest::new(&EngineOptions::default(), None);
    let store = untimed.store();
    assert!(matches!(untimed.sandbox.failure(&interrupt, store.data()), RunError::Trap(_)));
}

#[tokio::test]
async fn memory_past_the_limit_is_the_memory_limit() {
    let guest = Guest::new(&EngineOptions::default(), None);
    let error = guest.call("grow").await.unwrap_err();
    assert!(matches!(error, RunError::MemoryLimit(_)), "{error:?}");
    assert_eq!(error.to_string(), "guest exceeded its memory limit of 2MiB");
}

#[tokio::test]
async fn a_table_past_the_cap_is_a_limit() {
    let guest = Guest::new(&EngineOptions::default(), None);
    let error = guest.call("grow-table").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "guest exceeded its limit of 1000000 table elements (it asked for 2000001)",
        "{error:?}"
    );
}

#[tokio::test]
async fn a_host_error_is_one_line_without_the_backtrace() {
    let guest = Guest::new(&EngineOptions::default(), None);
    let error = guest.call("fail").await.unwrap_err();
    assert!(matches!(error, RunError::Host(_)), "{error:?}");
    assert_eq!(error.to_string(), "writing the log: disk on fire");
}

#[tokio::test]
async fn a_full_instance_pool_is_busy() {
    let pool = PoolOptions { instances: 1, max_memory: 4 << 20, copy_data: false };
    let guest = Guest::new(&EngineOptions { pooling: Some(pool) }, None);
    let mut first = guest.store();
    guest.instantiate(&mut first).await.unwrap();
    let mut second = guest.store();
    let error = guest.instantiate(&mut second).await.unwrap_err();
    assert!(matches!(error, RunError::Busy), "{error:?}");
    assert_eq!(error.to_string(), "instance pool exhausted");
    // The slot comes back with the store.
    drop(first);
    guest.instantiate(&mut second).await.unwrap();
}

/// A memory with a data segment ("wharf" at 1 KiB), and two exports: `dirty` writes 0xAB into
/// the segment, just past it, on the next page and on the last page; `check` answers 0 only if
/// all four hold their initial bytes again.
const RESIDUE: &str = r#"
(component
  (core module $m
    (memory 2)
    (data (i32.const 1024) "wharf")
    (func (export "dirty")
      (i32.store8 (i32.const 1024) (i32.const 0xab))
      (i32.store8 (i32.const 1100) (i32.const 0xab))
      (i32.store8 (i32.const 70000) (i32.const 0xab))
      (i32.store8 (i32.const 131071) (i32.const 0xab)))
    (func (export "check") (result i32)
      (i32.or
        (i32.or (i32.ne (i32.load8_u (i32.const 1024)) (i32.const 0x77))
                (i32.load8_u (i32.const 1100)))
        (i32.or (i32.load8_u (i32.const 70000)) (i32.load8_u (i32.const 131071))))))
  (core instance $i (instantiate $m))
  (func (export "dirty") (canon lift (core func $i "dirty")))
  (func (export "check") (result u32) (canon lift (core func $i "check"))))
"#;

#[tokio::test]
async fn a_pooled_slot_is_reset_whether_its_data_is_copied_or_mapped() {
    for copy_data in [true, false] {
        // One slot: every instance after the first gets the memory of the one before.
        let pool = PoolOptions { instances: 1, max_memory: 4 << 20, copy_data };
        let engine = WharfEngine::new(&EngineOptions { pooling: Some(pool) }).unwrap();
        assert_eq!(engine.engine().get_memory_init_cow(), !copy_data);
        let component = Component::new(engine.engine(), wat::parse_str(RESIDUE).unwrap()).unwrap();
        let linker = Linker::<HostState>::new(engine.engine());
        let data = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(&Policy::default(), &Backends::defaults(data.path()).unwrap(), |_| None).unwrap();
        let check = async |store: &mut Store<HostState>, instance: Instance| {
            let check = instance.get_typed_func::<(), (u32,)>(&mut *store, "check").unwrap();
            check.call_async(store, ()).await.unwrap().0
        };
        for round in 0..3 {
            let mut store = sandbox.store(&engine, &[], Stdio::Null).unwrap();
            let instance = linker.instantiate_async(&mut store, &component).await.unwrap();
            assert_eq!(check(&mut store, instance).await, 0, "copy_data {copy_data}, round {round}: residue");
            let dirty = instance.get_typed_func::<(), ()>(&mut store, "dirty").unwrap();
            dirty.call_async(&mut store, ()).await.unwrap();
            // The check sees what an instance leaves behind.
            assert_ne!(check(&mut store, instance).await, 0, "copy_data {copy_data}: the check is blind");
        }
    }
}
