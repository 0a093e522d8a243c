//! Load a component, check it against Cairn's `operator` world, instantiate it in the
//! sandbox and call it.

mod batch;
mod bindings;
mod error;
mod event;
mod exports;
mod inspect;
mod instance;
mod load;
mod pyjson;

pub use batch::{Batch, EventRef, Iter as BatchIter, TooLarge};
pub use error::{CallError, LoadError};
pub use event::Event;
pub use exports::Contract;
pub use inspect::{Inspection, WasmKind, inspect};
pub use instance::{OperatorBuilder, OperatorInstance};
pub use load::Plugin;

/// The world cairn-sdk plugins are built for. Components of `operator-core` (any language) and
/// of the older 0.1.x worlds run too.
pub const WORLD: &str = "cairn:operator/operator-packed@0.2.4";
