//! Stored values: small ones in place, longer ones shared.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The longest value kept in place.
pub const INLINE_VALUE_BYTES: usize = 22;

/// A stored value.
///
/// Values of up to [`INLINE_VALUE_BYTES`] bytes (counters, sums, small records: most operator state)
/// live in place, so storing one allocates nothing and copying one (into the undo log or a
/// checkpoint) is a 24-byte copy. Longer values are shared (`Arc`) between the state, the undo
/// log and a checkpoint in flight, and never copied after the write. Longer values restored
/// from a checkpoint share the buffer of their block ([`Block`]): a restore allocates once
/// per block, not once per value.
#[derive(Clone)]
pub struct Value(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_VALUE_BYTES],
    },
    Shared(Arc<[u8]>),
    /// Bytes `off..off + len` of a restored block's values.
    InBlock {
        block: Arc<Box<[u8]>>,
        off: u32,
        len: u32,
    },
}

/// The values of a checkpoint block, decoded into one buffer that the restored values longer
/// than [`INLINE_VALUE_BYTES`] share. The buffer lives while any of them does; it holds no
/// more than the restored values themselves.
pub struct Block(Arc<Box<[u8]>>);

impl Block {
    /// A block holding a copy of `values` (the values, one after the other).
    pub fn new(values: &[u8]) -> Self {
        Block(Arc::new(values.into()))
    }

    /// The value at `range` of the block's bytes: in place if short, else sharing the block.
    ///
    /// # Panics
    ///
    /// If `range` is outside the block (the caller checked it against the same bytes).
    pub fn value(&self, range: std::ops::Range<usize>) -> Value {
        let bytes = &self.0[range.clone()];
        if bytes.len() <= INLINE_VALUE_BYTES || u32::try_from(range.end).is_err() {
            return Value::new(bytes);
        }
        Value(Repr::InBlock {
            block: self.0.clone(),
            off: range.start as u32,
            len: bytes.len() as u32,
        })
    }
}

impl Value {
    /// A value holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE_VALUE_BYTES {
            let mut b = [0u8; INLINE_VALUE_BYTES];
            b[..bytes.len()].copy_from_slice(bytes);
            Value(Repr::Inline {
                len: bytes.len() as u8,
                bytes: b,
            })
        } else {
            Value(Repr::Shared(Arc::from(bytes)))
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Shared(b) => b,
            Repr::InBlock { block, off, len } => &block[*off as usize..(*off + *len) as usize],
        }
    }

    /// The bytes as a shared buffer (no copy when the value is already shared on its own).
    pub fn to_shared(&self) -> Arc<[u8]> {
        match &self.0 {
            Repr::Shared(b) => b.clone(),
            Repr::Inline { .. } | Repr::InBlock { .. } => Arc::from(self.as_slice()),
        }
    }
}

/// Store `new` in `copy`, a clone of `original` (the same value: equal bytes, and the same
/// allocation when shared), without reading `copy`. The state holder keeps a changed key's
/// value twice, in its slot (`original`, just read, in cache) and in the change list (`copy`,
/// at a random place of a large array): reading `copy` to drop it was a cache miss on every
/// write (~5% of a counter job). `copy`'s own reference to a shared allocation is released
/// through `original`'s pointer instead.
///
/// # Safety
///
/// `copy` must hold a clone of `original` (made by `Clone`, or the value `original` was
/// cloned from), and `original` must still hold its reference.
pub(crate) unsafe fn overwrite_clone(copy: &mut Option<Value>, original: &Value, new: Option<Value>) {
    match &original.0 {
        // SAFETY (both): `copy` holds a strong reference to this same allocation (the caller's
        // contract), released here once; `original`'s keeps it alive meanwhile.
        Repr::Shared(arc) => unsafe { Arc::decrement_strong_count(Arc::as_ptr(arc)) },
        Repr::InBlock { block, .. } => unsafe { Arc::decrement_strong_count(Arc::as_ptr(block)) },
        Repr::Inline { .. } => {}
    }
    // SAFETY: `copy` points to a valid `Option<Value>` whose only resource (a shared
    // allocation's reference) was released above, so not dropping it leaks nothing.
    unsafe { std::ptr::write(copy, new) };
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::new(b)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        if b.len() <= INLINE_VALUE_BYTES {
            Value::new(&b)
        } else {
            Value(Repr::Shared(Arc::from(b)))
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Value {}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_in_place_long_ones_shared() {
        for n in [0, 1, INLINE_VALUE_BYTES, INLINE_VALUE_BYTES + 1, 1000] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let v = Value::new(&bytes);
            assert_eq!(&*v, &bytes[..]);
            assert_eq!(Value::from(bytes.clone()), v);
            assert_eq!(&*v.to_shared(), &bytes[..]);
            assert_eq!(matches!(v.0, Repr::Inline { .. }), n <= INLINE_VALUE_BYTES);
        }
        assert_eq!(std::mem::size_of::<Option<Value>>(), 24);
        // Restored values: in place when short, else sharing their block's buffer.
        let values: Vec<u8> = (0..=255u8).collect();
        let block = Block::new(&values);
        for (from, to) in [
            (0, 0),
            (3, 3 + INLINE_VALUE_BYTES),
            (3, 4 + INLINE_VALUE_BYTES),
            (0, 256),
        ] {
            let v = block.value(from..to);
            assert_eq!(&*v, &values[from..to]);
            assert_eq!(&*v.to_shared(), &values[from..to]);
            assert_eq!(
                matches!(v.0, Repr::InBlock { .. }),
                to - from > INLINE_VALUE_BYTES
            );
            assert_eq!(v, Value::new(&values[from..to]));
        }
    }

    #[test]
    fn overwriting_a_clone_releases_its_reference_once() {
        let shared = Some(Value::new(&[7u8; 100]));
        let Some(Value(Repr::Shared(arc))) = &shared else {
            unreachable!()
        };
        let mut copy = shared.clone();
        assert_eq!(Arc::strong_count(arc), 2);
        // SAFETY: `copy` is a clone of `shared`, which still holds its reference.
        unsafe { overwrite_clone(&mut copy, shared.as_ref().unwrap(), Some(Value::new(b"x"))) };
        assert_eq!(Arc::strong_count(arc), 1);
        assert_eq!(copy.as_deref(), Some(&b"x"[..]));
        let block = Block::new(&[9u8; 200]);
        let in_block = Some(block.value(50..150));
        let Some(Value(Repr::InBlock { block: arc, .. })) = &in_block else {
            unreachable!()
        };
        let mut copy = in_block.clone();
        assert_eq!(Arc::strong_count(arc), 3, "the block, the value, its copy");
        // SAFETY: `copy` is a clone of `in_block`, which still holds its reference.
        unsafe { overwrite_clone(&mut copy, in_block.as_ref().unwrap(), Some(Value::new(b"y"))) };
        assert_eq!(Arc::strong_count(arc), 2);
        drop(block);
        assert_eq!(Arc::strong_count(arc), 1);
        assert_eq!(in_block.as_deref(), Some(&[9u8; 100][..]));
        let inline = Some(Value::new(b"abc"));
        let mut copy = inline.clone();
        // SAFETY: as above.
        unsafe { overwrite_clone(&mut copy, inline.as_ref().unwrap(), None) };
        assert_eq!(copy, None);
    }
}
