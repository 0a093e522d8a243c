//! Typed views over the key-value state: one value ([`ValueState`]) and a map under a prefix
//! ([`MapState`]). Values are stored as JSON (readable in `cairn checkpoints show`); map keys
//! are encoded so that iteration follows their natural order (numbers numerically).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, key, state};

/// Which scope a typed view works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The current scope at each use: the key of the event being handled (see [`state`]).
    Current,
    /// The operator-wide scope.
    Operator,
    /// The scope of this stream key.
    Key(String),
}

impl Scope {
    fn within<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Scope::Current => f(),
            Scope::Operator => state::with_operator(f),
            Scope::Key(k) => state::with_key(k, f),
        }
    }
}

/// A single typed value under one state key.
///
/// ```
/// use cairn_sdk::ValueState;
/// # cairn_sdk::state::native::reset(Default::default());
/// let total: ValueState<u64> = ValueState::new("total");
/// total.update(|t| t.unwrap_or(0) + 5)?;
/// assert_eq!(total.get()?, Some(5));
/// # Ok::<(), cairn_sdk::Error>(())
/// ```
pub struct ValueState<T> {
    key: String,
    scope: Scope,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    /// The value stored under `key` in the current scope (the event's key while handling one).
    pub fn new(key: impl Into<String>) -> Self {
        Self::in_scope(Scope::Current, key)
    }

    /// The operator-wide value stored under `key`.
    pub fn operator(key: impl Into<String>) -> Self {
        Self::in_scope(Scope::Operator, key)
    }

    /// The value stored under `key` in the scope of stream key `scope`.
    pub fn keyed(scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self::in_scope(Scope::Key(scope.into()), key)
    }

    /// The value stored under `key` in `scope`.
    pub fn in_scope(scope: Scope, key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            scope,
            _t: PhantomData,
        }
    }

    /// The state key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, if set.
    pub fn get(&self) -> Result<Option<T>, Error> {
        self.scope.within(|| state::get_as(&self.key))
    }

    /// The value, or `T::default()`.
    pub fn get_or_default(&self) -> Result<T, Error>
    where
        T: Default,
    {
        Ok(self.get()?.unwrap_or_default())
    }

    /// Store the value.
    pub fn set(&self, value: &T) -> Result<(), Error> {
        self.scope.within(|| state::set_as(&self.key, value))
    }

    /// Remove the value; returns whether it was set.
    pub fn clear(&self) -> bool {
        self.scope.within(|| state::remove(&self.key))
    }

    /// Replace the value with `f(old)` and return the new one.
    pub fn update(&self, f: impl FnOnce(Option<T>) -> T) -> Result<T, Error> {
        let new = f(self.get()?);
        self.set(&new)?;
        Ok(new)
    }
}

/// A key type of a [`MapState`]: how it becomes part of a state key and back, preserving order.
pub trait MapKey: Sized {
    /// Encode (the result must sort like `self`).
    fn encode(&self) -> String;
    /// Append [`MapKey::encode`]`()` to `out` (override it to build keys without allocating).
    fn encode_into(&self, out: &mut String) {
        out.push_str(&self.encode());
    }
    /// Decode what [`MapKey::encode`] produced.
    fn decode(text: &str) -> Option<Self>;
}

impl MapKey for String {
    fn encode(&self) -> String {
        key::escape(self)
    }
    fn encode_into(&self, out: &mut String) {
        key::escape_into(self, out)
    }
    fn decode(text: &str) -> Option<Self> {
        key::unescape(text)
    }
}

impl MapKey for i64 {
    fn encode(&self) -> String {
        key::ordered_i64(*self)
    }
    fn encode_into(&self, out: &mut String) {
        key::push_ordered_i64(out, *self)
    }
    fn decode(text: &str) -> Option<Self> {
        key::parse_ordered_i64(text)
    }
}

impl MapKey for u64 {
    fn encode(&self) -> String {
        format!("{self:016x}")
    }
    fn decode(text: &str) -> Option<Self> {
        u64::from_str_radix(text, 16).ok()
    }
}

/// A typed map stored as one state key per entry under a prefix, iterable in key order.
///
/// ```
/// use cairn_sdk::MapState;
/// # cairn_sdk::state::native::reset(Default::default());
/// let windows: MapState<i64, f64> = MapState::new("win/sensor-1");
/// windows.insert(&60_000, &1.5)?;
/// windows.insert(&0, &2.0)?;
/// assert_eq!(windows.entries()?, vec![(0, 2.0), (60_000, 1.5)]);
/// # Ok::<(), cairn_sdk::Error>(())
/// ```
pub struct MapState<K, V> {
    prefix: String,
    scope: Scope,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: MapKey, V: Serialize + DeserializeOwned> MapState<K, V> {
    /// The map under `prefix` (a `/` is appended to separate entries) in the current scope.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self::in_scope(Scope::Current, prefix)
    }

    /// The operator-wide map under `prefix`.
    pub fn operator(prefix: impl Into<String>) -> Self {
        Self::in_scope(Scope::Operator, prefix)
    }

    /// The map under `prefix` in `scope`.
    pub fn in_scope(scope: Scope, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        prefix.push('/');
        Self {
            prefix,
            scope,
            _t: PhantomData,
        }
    }

    fn full(&self, k: &K) -> String {
        self.entry_key(k)
    }

    /// The state key of entry `k` (in the map's scope): what to name in
    /// [`crate::state::prefetch_entries`] to read the entries a batch will need in one call.
    pub fn entry_key(&self, k: &K) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 24);
        key.push_str(&self.prefix);
        k.encode_into(&mut key);
        key
    }

    /// The value under `k`.
    pub fn get(&self, k: &K) -> Result<Option<V>, Error> {
        self.scope.within(|| state::get_as(&self.full(k)))
    }

    /// Store `v` under `k`.
    pub fn insert(&self, k: &K, v: &V) -> Result<(), Error> {
        self.scope.within(|| state::set_as(&self.full(k), v))
    }

    /// Remove `k`; returns whether it was present.
    pub fn remove(&self, k: &K) -> bool {
        self.scope.within(|| state::remove(&self.full(k)))
    }

    /// Remove `k` without asking whether it was present (see [`crate::state::discard`]).
    pub fn discard(&self, k: &K) {
        self.scope.within(|| state::discard(&self.full(k)))
    }

    /// Whether `k` is present.
    pub fn contains(&self, k: &K) -> bool {
        self.scope.within(|| state::exists(&self.full(k)))
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<K> {
        self.scope
            .within(|| state::keys_with_prefix(&self.prefix))
            .iter()
            .filter_map(|full| K::decode(&full[self.prefix.len()..]))
            .collect()
    }

    /// Every entry, in key order (fetched with one batch call).
    pub fn entries(&self) -> Result<Vec<(K, V)>, Error> {
        let (fulls, values) = self.scope.within(|| {
            let fulls = state::keys_with_prefix(&self.prefix);
            let values = state::get_many(&fulls);
            (fulls, values)
        });
        let mut out = Vec::with_capacity(fulls.len());
        for (full, value) in fulls.iter().zip(values) {
            let (Some(k), Some(bytes)) = (K::decode(&full[self.prefix.len()..]), value) else {
                continue;
            };
            let v = serde_json::from_slice(&bytes).map_err(|e| {
                Error::msg(format_args!(
                    "state key {full:?} does not hold the expected JSON: {e}"
                ))
            })?;
            out.push((k, v));
        }
        Ok(out)
    }

    /// Remove every entry; returns how many there were.
    pub fn clear(&self) -> u32 {
        self.scope
            .within(|| state::remove_many(&state::keys_with_prefix(&self.prefix)))
    }
}
