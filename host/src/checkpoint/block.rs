//! The sorted block: how a key group's sets and deletes are laid out in a version-3 payload,
//! so that LZ4 finds more to share. Keys are written in byte order, each as the length it
//! shares with the key before it and the rest (a stream key's scope and a window's or timer's
//! common prefix are written once per run of keys, not once per key); the values' lengths come
//! together after the keys, then the values themselves, one after another (values of one
//! operator look alike, and now sit side by side).
//!
//! ```text
//! sets block:    n, n × (shared, suffix length, suffix bytes), n × value length, the values
//! deletes block: n, n × (shared, suffix length, suffix bytes)
//! ```
//!
//! Numbers are LEB128 varints. Decoding checks every length against what is left and that the
//! keys are UTF-8 and strictly ascending, and reports the first fault with its byte offset.

use crate::state::{Block, Key, Value};

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn shared_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Write `keys` (already in byte order) prefix-elided.
fn put_keys<'a>(out: &mut Vec<u8>, keys: impl Iterator<Item = &'a str>) {
    let mut prev: &[u8] = &[];
    for k in keys {
        let k = k.as_bytes();
        let shared = shared_len(prev, k);
        put_varint(out, shared as u64);
        put_varint(out, (k.len() - shared) as u64);
        out.extend_from_slice(&k[shared..]);
        prev = k;
    }
}

/// The sets block of `sets` (any order; written sorted by key). A delta's keys are unique;
/// should one appear twice, the later value is kept, as applying them in order would.
pub(super) fn encode_sets(sets: &[(Key, Value)]) -> Vec<u8> {
    let mut order: Vec<&(Key, Value)> = sets.iter().collect();
    order.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes())); // stable: equal keys keep their order
    let mut last: Vec<&(Key, Value)> = Vec::with_capacity(order.len());
    for e in order {
        match last.last_mut() {
            Some(prev) if prev.0 == e.0 => *prev = e,
            _ => last.push(e),
        }
    }
    let order = last;
    let values: usize = sets.iter().map(|(_, v)| v.len()).sum();
    let keys: usize = sets.iter().map(|(k, _)| k.len()).sum();
    let mut out = Vec::with_capacity(8 + keys + values + 4 * sets.len());
    put_varint(&mut out, order.len() as u64);
    put_keys(&mut out, order.iter().map(|(k, _)| &**k));
    for (_, v) in &order {
        put_varint(&mut out, v.len() as u64);
    }
    for (_, v) in &order {
        out.extend_from_slice(v);
    }
    out
}

/// The deletes block of `keys` (any order; written sorted, each once).
pub(super) fn encode_deletes(keys: &[Key]) -> Vec<u8> {
    let mut order: Vec<&str> = keys.iter().map(|k| &**k).collect();
    order.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    order.dedup();
    let mut out = Vec::with_capacity(8 + keys.iter().map(|k| k.len()).sum::<usize>());
    put_varint(&mut out, order.len() as u64);
    put_keys(&mut out, order.into_iter());
    out
}

/// A cursor over a block, naming the byte offset of a fault.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self, what: &str) -> Result<u64, String> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(format!("{what} at byte {start} runs past the end of the block"));
            };
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("{what} at byte {start} is not a varint"))
    }

    /// A count or length that must fit in what is left (at least `min_each` bytes per unit).
    fn len(&mut self, what: &str, min_each: usize) -> Result<usize, String> {
        let start = self.at;
        let n = self.varint(what)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_each as u64) > left {
            return Err(format!("{what} {n} at byte {start} is more than the block holds"));
        }
        Ok(n as usize)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        s
    }

    /// Key `i` of a run of prefix-elided keys, rebuilt in `cur` (which holds key `i - 1`),
    /// checked UTF-8 and after the key before it.
    fn next_key(&mut self, i: usize, cur: &mut Vec<u8>) -> Result<Key, String> {
        let start = self.at;
        let shared = self.varint("a shared length")? as usize;
        if shared > cur.len() {
            return Err(format!(
                "key {i} at byte {start} shares {shared} bytes of a {}-byte key",
                cur.len()
            ));
        }
        let suffix = self.len("a key length", 1)?;
        let rest = self.take(suffix);
        // The keys agree on `shared` bytes: the new one is after iff its rest is.
        if i > 0 && rest <= &cur[shared..] {
            return Err(format!("key {i} at byte {start} is not after the key before it"));
        }
        cur.truncate(shared);
        cur.extend_from_slice(rest);
        let s = std::str::from_utf8(cur).map_err(|_| format!("key {i} at byte {start} is not UTF-8"))?;
        Ok(Key::from(s))
    }

    /// Step over `n` prefix-elided keys (their lengths checked; the keys are read later).
    fn skip_keys(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            self.varint("a shared length")?;
            let suffix = self.len("a key length", 1)?;
            self.at += suffix;
        }
        Ok(())
    }

    fn end(&self) -> Result<(), String> {
        if self.at != self.bytes.len() {
            return Err(format!(
                "{} bytes left over after the block",
                self.bytes.len() - self.at
            ));
        }
        Ok(())
    }
}

/// Read a sets block. Keys, lengths and values are read side by side by three cursors, so
/// each entry is built once, straight into the result.
#[cfg(test)]
pub(super) fn decode_sets(bytes: &[u8]) -> Result<Vec<(Key, Value)>, String> {
    let mut out = Vec::new();
    decode_sets_into(bytes, &mut out)?;
    Ok(out)
}

/// How many entries the sets block `bytes` says it holds (0 if it cannot say: decoding it
/// then tells what is wrong).
pub(super) fn set_count(bytes: &[u8]) -> usize {
    Reader { bytes, at: 0 }.len("the entry count", 3).unwrap_or(0)
}

/// How many keys the deletes block `bytes` says it holds (0 if it cannot say).
pub(super) fn delete_count(bytes: &[u8]) -> usize {
    Reader { bytes, at: 0 }.len("the key count", 2).unwrap_or(0)
}

/// [`decode_sets`], appending to `out`.
pub(super) fn decode_sets_into(bytes: &[u8], out: &mut Vec<(Key, Value)>) -> Result<(), String> {
    let mut values = Reader { bytes, at: 0 };
    // Each entry takes at least 3 bytes: two key varints and a value length.
    let n = values.len("the entry count", 3)?;
    let mut keys = Reader { bytes, at: values.at };
    values.skip_keys(n)?;
    let mut lens = Reader { bytes, at: values.at };
    for _ in 0..n {
        values.len("a value length", 1)?;
    }
    // The values, one after the other, to the end: longer ones share one copy of them.
    let block = Block::new(&bytes[values.at..]);
    let base = values.at;
    let mut cur = Vec::new();
    out.reserve(n);
    for i in 0..n {
        let key = keys.next_key(i, &mut cur)?;
        let len = lens.varint("a value length")? as usize;
        if len > bytes.len() - values.at {
            return Err(format!(
                "a value of {len} bytes at byte {} runs past the end of the block",
                values.at
            ));
        }
        let at = values.at - base;
        values.take(len);
        out.push((key, block.value(at..at + len)));
    }
    values.end()
}

/// Read a deletes block.
pub(super) fn decode_deletes(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.len("the key count", 2)?;
    let mut cur = Vec::new();
    let keys = (0..n)
        .map(|i| r.next_key(i, &mut cur))
        .collect::<Result<_, _>>()?;
    r.end()?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sets(entries: &[(String, Vec<u8>)]) -> Vec<(Key, Value)> {
        entries
            .iter()
            .map(|(k, v)| (Key::from(k.as_str()), Value::from(&v[..])))
            .collect()
    }

    fn plain(s: &[(Key, Value)]) -> Vec<(String, Vec<u8>)> {
        s.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    proptest! {
        /// Any distinct keys and values come back, sorted by key.
        #[test]
        fn sets_round_trip(entries in proptest::collection::btree_map("[a-c/:é0-9]{0,12}", proptest::collection::vec(any::<u8>(), 0..40), 0..60)) {
            let mut given: Vec<(String, Vec<u8>)> = entries.into_iter().collect();
            given.reverse(); // written in any order
            let block = encode_sets(&sets(&given));
            let back = decode_sets(&block).unwrap();
            given.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            prop_assert_eq!(plain(&back), given);
        }

        #[test]
        fn deletes_round_trip(keys in proptest::collection::btree_set("[a-c/é0-9]{0,12}", 0..60)) {
            let given: Vec<Key> = keys.iter().rev().map(|k| Key::from(k.as_str())).collect();
            let back = decode_deletes(&encode_deletes(&given)).unwrap();
            let want: Vec<String> = keys.into_iter().collect();
            prop_assert_eq!(back.iter().map(|k| k.to_string()).collect::<Vec<_>>(), want);
        }

        /// Damaged blocks are refused with a reason, never a panic.
        #[test]
        fn damage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode_sets(&bytes);
            let _ = decode_deletes(&bytes);
        }
    }

    #[test]
    fn shared_prefixes_are_written_once() {
        let given = sets(&[
            ("8:sensor-1/win/0001".into(), b"{}".to_vec()),
            ("8:sensor-1/win/0002".into(), b"{}".to_vec()),
        ]);
        let block = encode_sets(&given);
        // n, (0, 19, key), (18, 1, "2"), 2 lengths, 2 values
        assert_eq!(block.len(), 1 + 2 + 19 + 2 + 1 + 2 + 4);
        let mut bad = block.clone();
        bad[1 + 2 + 19] = 30; // shares more than the key before has
        assert!(decode_sets(&bad).unwrap_err().contains("shares 30 bytes"));
    }
}
