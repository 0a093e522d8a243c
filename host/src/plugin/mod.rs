//! Load a component, check it against Cairn's `operator` world, instantiate it in the
//! sandbox and call it.

mod batch;
pub mod bindings;
mod error;
mod host;
mod inspect;
mod instance;
mod load;

pub use batch::{Batch, EventRef, Iter as BatchIter, TooLarge};
pub use error::{CallError, LoadError};
pub use inspect::{Inspection, WasmKind, inspect};
pub use instance::{OperatorBuilder, OperatorInstance};
pub use load::Plugin;

/// The world every plugin must fit.
pub const WORLD: &str = "cairn:operator/operator@0.1.1";
