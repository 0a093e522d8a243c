//! The wasmtime engine shared by every plugin of a process, with the epoch ticker that
//! enforces call deadlines.

mod cache;

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use thiserror::Error;

pub use cache::{CacheOutcome, ComponentCache, file_state};

/// How often the epoch advances; call deadlines are rounded up to a multiple of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Failure to set up the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("could not create the WebAssembly engine: {0:#}")]
    Config(wasmtime::Error),
    /// The epoch ticker thread could not start.
    #[error("could not start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
}

/// Engine settings that affect compiled code (and so the component cache key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EngineOptions {
    /// Count fuel in compiled code so that `Limits::fuel` can bound a call's instructions.
    pub fuel: bool,
}

/// A wasmtime engine configured for Cairn: component model, epoch interruption for deadlines,
/// optional fuel. Cheap to clone; the ticker thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    options: EngineOptions,
    cache: Option<ComponentCache>,
    /// Values built once per engine from the engine alone (`memo`), shared by its clones.
    memo: Arc<Mutex<Vec<Arc<dyn Any + Send + Sync>>>>,
    _ticker: Arc<TickerGuard>,
}

struct TickerGuard;

impl Engine {
    /// An engine with default options.
    pub fn new() -> Result<Self, EngineError> {
        Self::with_options(EngineOptions::default())
    }

    /// An engine with the given options.
    pub fn with_options(options: EngineOptions) -> Result<Self, EngineError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        #[cfg(feature = "perfmap")]
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        let inner = wasmtime::Engine::new(&config).map_err(EngineError::Config)?;
        let weak = inner.weak();
        thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                loop {
                    thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(EngineError::Ticker)?;
        Ok(Self {
            inner,
            options,
            cache: None,
            memo: Arc::default(),
            _ticker: Arc::new(TickerGuard),
        })
    }

    /// Use `cache` for compiled components (`None`, the default: always compile). The library
    /// picks no location itself; the `cairn` binary uses `$CAIRN_CACHE_DIR`, else the user's
    /// cache directory.
    pub fn with_cache(mut self, cache: Option<ComponentCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The component cache in use.
    pub fn cache(&self) -> Option<&ComponentCache> {
        self.cache.as_ref()
    }

    /// A short hash of everything that changes compiled code: wasmtime's version, the target,
    /// and the engine settings.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "wasmtime-48.0.8;{};{};fuel={};epoch=1;opt=speed",
            std::env::consts::ARCH,
            std::env::consts::OS,
            self.options.fuel
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// Compile a component, through the cache when there is one.
    pub fn compile_component(
        &self,
        bytes: &[u8],
    ) -> wasmtime::Result<(wasmtime::component::Component, CacheOutcome)> {
        use sha2::{Digest, Sha256};
        self.compile_component_digested(bytes, &Sha256::digest(bytes).into())
    }

    /// [`compile_component`](Self::compile_component) with the SHA-256 of `bytes` given.
    pub fn compile_component_digested(
        &self,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> wasmtime::Result<(wasmtime::component::Component, CacheOutcome)> {
        match &self.cache {
            Some(c) => c.load_digested(self, bytes, digest),
            None => Ok((
                wasmtime::component::Component::new(&self.inner, bytes)?,
                CacheOutcome::Disabled,
            )),
        }
    }

    /// The value of type `T` built once for this engine (and its clones) by `init`: what the
    /// plugin layer makes from the engine alone, such as its linker of host functions
    /// (~0.15 ms a plugin load would otherwise spend).
    pub(crate) fn memo<T: Any + Send + Sync>(&self, init: impl FnOnce(&Self) -> T) -> Arc<T> {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = memo.iter().find_map(|v| v.clone().downcast::<T>().ok()) {
            return v;
        }
        let v = Arc::new(init(self));
        memo.push(v.clone());
        v
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// The options this engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Number of epoch ticks that covers `timeout` (at least one).
    pub fn ticks_for(timeout: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (timeout.as_nanos().div_ceil(tick)).max(1) as u64
    }
}
