//! Operator state: a key-value map with dirty/deleted tracking for incremental checkpoints
//! and a per-batch transaction. Knows nothing of WASM or storage.

mod holder;
mod key;
mod usage;
mod value;

pub use holder::{Key, StateDelta, StateError, StateHolder, StateQuotas};
pub use key::INLINE_KEY_BYTES;
pub(crate) use value::Block;
pub use value::{INLINE_VALUE_BYTES, Value};
