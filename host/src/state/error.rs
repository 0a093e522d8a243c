//! Why the state core refused an operation. Bindings turn these into the answer their
//! interface has for it (`state-error`, keyvalue's `error.other`, or a failed call).

use std::ops::Range;

use thiserror::Error;

/// An operation the state core refused; the state is unchanged by it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// A quota would be exceeded.
    #[error("state quota {limit} = {value} would be exceeded ({detail})")]
    QuotaExceeded {
        /// Which limit (`max-keys`, `max-state-bytes`, `max-value-bytes`, `max-timers`).
        limit: &'static str,
        /// Its configured value.
        value: u64,
        /// What the write attempted.
        detail: String,
    },
    /// A keyed read, write or timer of a stream key whose key group this instance does not own.
    #[error(
        "{what} of key {key:?} in scope {scope:?} refused: the scope is in key group {group} of \
         {groups}, outside the groups {}..{} this instance owns; an instance may only touch the \
         keys of its own groups (route events by key group, or run with parallelism 1)",
        owned.start, owned.end
    )]
    NotOwned {
        /// `read`, `write` or `timer`.
        what: &'static str,
        /// The stream key (scope).
        scope: String,
        /// The key within the scope (for a timer: its time).
        key: String,
        /// The scope's key group.
        group: u32,
        /// The job's number of key groups.
        groups: u32,
        /// The groups the instance owns.
        owned: Range<u32>,
    },
    /// A write to the operator-wide scope by one of several instances: such state cannot be
    /// split by key group.
    #[error(
        "write of operator-wide key {key:?} refused: operator-wide state needs parallelism 1 (this \
         instance owns key groups {}..{} of {groups}); keep the state in the key's scope, or run \
         the operator with parallelism 1",
        owned.start, owned.end
    )]
    OperatorWide {
        /// The key.
        key: String,
        /// The job's number of key groups.
        groups: u32,
        /// The groups the instance owns.
        owned: Range<u32>,
    },
    /// A timer was registered by a component that cannot be told when it fires.
    #[error(
        "timers need the `cairn:operator/timer-handler` export (`on-timers`), which this component lacks"
    )]
    NoTimerHandler,
}
