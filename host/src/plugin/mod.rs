//! Load a component, check it against Cairn's `operator` world, instantiate it in the
//! sandbox and call it.

mod batch;
mod bindings;
mod declared;
mod error;
mod event;
mod exports;
mod inspect;
mod instance;
mod load;
mod pyjson;

pub use cairn_codec::declared::Declared;

pub use batch::{Batch, EventRef, Iter as BatchIter, TooLarge};
pub use declared::read as read_declared;
pub use error::{CallError, LoadError};
pub use event::Event;
pub use exports::{Contract, Rewrite};
pub use inspect::{Inspection, WasmKind, inspect};
pub use instance::{Migrated, OperatorBuilder, OperatorInstance};
pub use load::Plugin;
/// Write a CPython `marshal` (version 2) value as JSON, exactly as serde_json would: what the
/// host does with the values a Python operator emits with `out.emit_json` (public for the fuzz
/// target `marshal_json`).
pub use pyjson::write as marshal_to_json;

/// The current version of the `cairn:operator` contract (`cairn_codec::CONTRACT_VERSION`).
pub use cairn_codec::CONTRACT_VERSION;

/// The world cairn-sdk plugins are built for, at the current version. Components of every
/// world of every supported version run too (`wit/README.md`).
pub const WORLD: &str = concat!(
    "cairn:operator/operator-packed@",
    cairn_codec::contract_version!()
);
