//! Operator state: a key-value map with dirty/deleted tracking for incremental checkpoints
//! and a per-batch transaction. Knows nothing of WASM or storage.

mod holder;
mod value;

pub use holder::{Key, StateDelta, StateError, StateHolder, StateQuotas};
pub use value::{INLINE_VALUE_BYTES, Value};
