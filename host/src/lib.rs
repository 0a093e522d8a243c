//! # cairn
//!
//! Host for stateful stream operators compiled to WebAssembly components.
//!
//! ```no_run
//! use cairn::{Engine, Event, Plugin};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::new()?;
//! let plugin = Plugin::load(&engine, "dist/plugins/counter.wasm")?;
//! let mut op = plugin.operator().config("{}").build()?;
//! let out = op.process(&[Event { key: "a".into(), ts: 1, value: b"{}".to_vec() }])?;
//! assert_eq!(out[0].value, br#"{"count":1}"#);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod admin;
pub mod alloc;
pub mod checkpoint;
#[cfg(feature = "nats")]
pub mod cluster;
pub mod engine;
pub mod plugin;
pub mod project;
pub mod runtime;
pub mod sandbox;
pub mod state;
pub mod store;

pub use engine::{Engine, EngineOptions};
pub use plugin::{
    Batch, CallError, Event, EventRef, LoadError, Migrated, OperatorBuilder, OperatorInstance, Plugin,
};
pub use sandbox::Limits;
pub use state::StateHolder;
