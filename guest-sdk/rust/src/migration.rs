//! State migration: how version N of an operator reads the state an older version wrote.
//!
//! Declare the version of your state layout with [`crate::export!`]
//! (`cairn_sdk::export!(Counter, name = "counter", state_version = 2);`) and implement
//! [`crate::Operator::migrate`]. When the host resumes from a checkpoint written under an
//! older state version, it hands every entry of the state to `migrate` (keyed scopes and
//! operator-wide; never its own records) before any event, and applies what it answers. The
//! whole migration is one transaction: if it fails, the checkpoint stays as it was and the old
//! plugin still resumes from it.
//!
//! ```
//! use cairn_sdk::migration::{Entry, Rewrite};
//!
//! /// Version 1 kept a count as 4 little-endian bytes; version 2 keeps `{"n": count}`.
//! fn migrate(from_version: u32, entry: &Entry) -> Result<Rewrite, cairn_sdk::Error> {
//!     match (from_version, entry.key.as_str()) {
//!         (1, "count") => {
//!             let n = u32::from_le_bytes(entry.value.as_slice().try_into().map_err(|_| "not 4 bytes")?);
//!             Rewrite::set_json(&serde_json::json!({ "n": n }))
//!         }
//!         _ => Ok(Rewrite::Keep),
//!     }
//! }
//! # let e = Entry { scope: Some("a".into()), key: "count".into(), value: 7u32.to_le_bytes().to_vec() };
//! # assert_eq!(migrate(1, &e).unwrap(), Rewrite::Set(br#"{"n":7}"#.to_vec()));
//! ```

use serde::Serialize;

use crate::Error;

/// One entry of state as the old version wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `Some(k)`: the scope of stream key `k`; `None`: the operator-wide scope.
    pub scope: Option<String>,
    /// The key within the scope.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
}

/// What becomes of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Leave it as it is.
    Keep,
    /// Store these bytes instead.
    Set(Vec<u8>),
    /// Remove it.
    Remove,
}

impl Rewrite {
    /// Store `value` as JSON instead (as [`crate::state::set_as`] would).
    pub fn set_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        Ok(Rewrite::Set(serde_json::to_vec(value)?))
    }
}
