//! Operator state. [`OperatorState`] is the state core: what every state operation of a guest
//! means (scoped keys, key-group ownership, state TTL, quotas, timers, change tracking and
//! undo), written once; every WIT binding is a thin adapter over it. [`StateHolder`] underneath
//! is the key-value map with dirty tracking for incremental checkpoints and a per-batch
//! transaction. Knows nothing of WASM or storage.

mod batch_times;
mod error;
mod holder;
mod key;
mod operator;
mod ownership;
mod ttl;
mod usage;
mod value;

pub use error::StateError;
pub use holder::{Key, StateDelta, StateHolder, StateQuotas};
pub use key::INLINE_KEY_BYTES;
pub use operator::{OperatorState, TimerUsage};
pub use ownership::{KeyGroups, KeyGroupsError, MAX_KEY_GROUPS};
pub(crate) use value::Block;
pub use value::{INLINE_VALUE_BYTES, Value};
