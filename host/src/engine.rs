//! The wasmtime engine shared by every plugin of a process, with the epoch ticker that
//! enforces call deadlines.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use thiserror::Error;

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
            _ticker: Arc::new(TickerGuard),
        })
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
