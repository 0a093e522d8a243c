//! Checkpoint bytes <-> [`CheckpointData`]: the header (`format.rs`), then the payload
//! (`ranged.rs` from format 5: an index and blocks by key-group range; `payload.rs` before),
//! LZ4-compressed, then either a CRC32 or AES-256-GCM (fresh random nonces, the header as
//! associated data of what its nonce seals).

use std::borrow::Cow;

use aes_gcm::Aes256Gcm;

use super::compression::Compression;
use super::crypto::{EncryptionKey, fresh_nonce, open, seal_with};
use super::format::{FLAG_ENCRYPTED, FLAG_LZ4, HEADER_LEN, Header, Kind, VERSION};
use super::ranged::{self, DecodeStats, OperatorIndex, Select};
use super::{CheckpointData, Damage};
use crate::store::CheckpointId;

/// Largest serialized payload accepted when decoding (guards against absurd length fields).
const MAX_RAW_LEN: u64 = 64 << 30;

/// A checkpoint's header, what its nonce sealed (opened; LZ4 still to undo) and the blocks
/// after it (format 5).
type Opened<'a> = (Header, Cow<'a, [u8]>, &'a [u8]);

/// Encodes and decodes checkpoint bytes, with or without encryption.
#[derive(Clone, Default)]
pub struct Codec {
    cipher: Option<Aes256Gcm>,
    compression: Compression,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("encrypted", &self.cipher.is_some())
            .field("compression", &self.compression)
            .finish()
    }
}

/// Where a checkpoint sits in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Its id.
    pub id: CheckpointId,
    /// Full or delta.
    pub kind: Kind,
    /// The chain's full checkpoint.
    pub base: CheckpointId,
    /// The previous checkpoint (deltas only).
    pub parent: Option<CheckpointId>,
}

impl Codec {
    /// A codec without encryption.
    pub fn plain() -> Self {
        Self::default()
    }

    /// A codec that encrypts with `key` and reads only checkpoints encrypted with it.
    pub fn encrypted(key: &EncryptionKey) -> Self {
        Self {
            cipher: Some(key.cipher()),
            compression: Compression::default(),
        }
    }

    /// The same codec, writing with `compression` (reading is the same for every setting).
    pub fn with_compression(self, compression: Compression) -> Self {
        Self { compression, ..self }
    }

    /// How it compresses what it writes.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// A codec for an optional key.
    pub fn with_key(key: Option<&EncryptionKey>) -> Self {
        key.map(Self::encrypted).unwrap_or_default()
    }

    /// Whether it encrypts.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Serialize, compress and frame `data`.
    pub fn encode(&self, at: Placement, created_ms: u64, data: &CheckpointData) -> Result<Vec<u8>, String> {
        self.encode_with(at, created_ms, None, data)
    }

    /// [`Codec::encode`], recording in the header how long the write of checkpoint `at.id - 1`
    /// took (µs). Writes format 5 (`ranged.rs`).
    pub fn encode_with(
        &self,
        at: Placement,
        created_ms: u64,
        previous_write_us: Option<u32>,
        data: &CheckpointData,
    ) -> Result<Vec<u8>, String> {
        let enc = ranged::encode(data, at.id, self.compression, self.cipher.as_ref())?;
        let tag = if self.cipher.is_some() { 16 } else { 0 };
        let index_len = enc.index.len() + tag;
        let mut header = Header {
            version: VERSION,
            kind: at.kind,
            flags: FLAG_LZ4,
            sequence: at.id,
            base: at.base,
            parent: at.parent,
            created_ms,
            raw_len: enc.index_raw_len as u64,
            payload_len: (4 + index_len + enc.blocks.len()) as u64,
            nonce: [0; 12],
            previous_write_us,
        };
        let index_len = u32::try_from(index_len).map_err(|_| format!("an index of {index_len} bytes"))?;
        let mut out = Vec::with_capacity(header.total_len() as usize);
        match &self.cipher {
            None => {
                out.extend_from_slice(&header.encode());
                out.extend_from_slice(&index_len.to_le_bytes());
                out.extend_from_slice(&enc.index);
                out.extend_from_slice(&enc.blocks);
                let crc = crc32fast::hash(&out[HEADER_LEN..]);
                out.extend_from_slice(&crc.to_le_bytes());
            }
            Some(cipher) => {
                header.flags |= FLAG_ENCRYPTED;
                // The nonce is part of the associated data: draw it first, then seal.
                header.nonce = fresh_nonce()?;
                let aad = header.encode();
                out.extend_from_slice(&aad);
                out.extend_from_slice(&index_len.to_le_bytes());
                out.extend_from_slice(&seal_with(cipher, &header.nonce, &aad, &enc.index)?);
                out.extend_from_slice(&enc.blocks);
            }
        }
        Ok(out)
    }

    /// Check framing and (for an unencrypted checkpoint) the payload's checksum; returns the
    /// header and the stored payload.
    fn frame<'a>(&self, id: CheckpointId, bytes: &'a [u8]) -> Result<(Header, &'a [u8]), Damage> {
        let header = Header::decode(bytes)?;
        if header.sequence != id {
            return Err(Damage::WrongId {
                stored: id,
                header: header.sequence,
            });
        }
        let total = header.total_len();
        if (bytes.len() as u64) < total {
            return Err(Damage::Truncated {
                expected: total,
                actual: bytes.len() as u64,
            });
        }
        if (bytes.len() as u64) > total {
            return Err(Damage::InvalidHeader(format!(
                "{} bytes stored where the header accounts for {total}",
                bytes.len()
            )));
        }
        let end = HEADER_LEN + header.payload_len as usize;
        let payload = &bytes[HEADER_LEN..end];
        match (&self.cipher, header.encrypted()) {
            (None, true) => Err(Damage::NeedsKey),
            (Some(_), false) => Err(Damage::Unencrypted),
            (Some(_), true) => Ok((header, payload)),
            (None, false) => {
                let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
                let computed = crc32fast::hash(payload);
                if stored != computed {
                    return Err(Damage::PayloadChecksum { stored, computed });
                }
                Ok((header, payload))
            }
        }
    }

    /// The part of the payload the header's nonce seals (and the header authenticates): the
    /// whole payload before format 5, the index from format 5 on. Returns it opened (LZ4
    /// still to undo) and, from format 5 on, the blocks after it.
    fn open_payload<'a>(&self, id: CheckpointId, bytes: &'a [u8]) -> Result<Opened<'a>, Damage> {
        let (header, payload) = self.frame(id, bytes)?;
        let (sealed, rest) = if header.version >= 5 {
            let len = payload
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .filter(|&l| l <= payload.len() - 4)
                .ok_or_else(|| Damage::Decode("the index's length runs past the payload".into()))?;
            (&payload[4..4 + len], &payload[4 + len..])
        } else {
            (payload, &payload[payload.len()..])
        };
        let opened = match &self.cipher {
            Some(cipher) => {
                Cow::Owned(open(cipher, &header.nonce, &bytes[..HEADER_LEN], sealed).ok_or(Damage::Decrypt)?)
            }
            None => Cow::Borrowed(sealed),
        };
        Ok((header, opened, rest))
    }

    /// Undo LZ4 on what the header describes (`raw_len`).
    fn decompress(header: &Header, payload: &[u8]) -> Result<Vec<u8>, Damage> {
        let payload_len = payload.len() as u64;
        if header.raw_len > MAX_RAW_LEN || header.raw_len > payload_len.saturating_mul(256) + 64 {
            return Err(Damage::InvalidHeader(format!(
                "uncompressed length {} is impossible for {} stored bytes",
                header.raw_len, payload_len
            )));
        }
        let raw = if header.flags & FLAG_LZ4 != 0 {
            lz4_flex::block::decompress(payload, header.raw_len as usize)
                .map_err(|e| Damage::Decompress(e.to_string()))?
        } else {
            payload.to_vec()
        };
        if raw.len() as u64 != header.raw_len {
            return Err(Damage::Decompress(format!(
                "{} bytes after decompression, header says {}",
                raw.len(),
                header.raw_len
            )));
        }
        Ok(raw)
    }

    /// Check the framing and integrity of `bytes` (stored as checkpoint `id`) and return its
    /// header, without decoding the payload. Encrypted checkpoints are authenticated (from
    /// format 5: the index and every block).
    pub fn verify(&self, id: CheckpointId, bytes: &[u8]) -> Result<Header, Damage> {
        let (header, index, area) = self.open_payload(id, bytes)?;
        if header.version >= 5
            && let Some(cipher) = &self.cipher
        {
            let (_, operators) = ranged::read_index(header.version, &Self::decompress(&header, &index)?)
                .map_err(Damage::Decode)?;
            ranged::authenticate(&operators, area, id, cipher)?;
        }
        Ok(header)
    }

    /// The blocks of each operator of checkpoint `id` (format 5; `None` before it, whose
    /// payload is one block).
    pub fn layout(&self, id: CheckpointId, bytes: &[u8]) -> Result<Option<Vec<OperatorIndex>>, Damage> {
        let (header, index, _) = self.open_payload(id, bytes)?;
        if header.version < 5 {
            return Ok(None);
        }
        let (_, operators) = ranged::read_index(header.version, &Self::decompress(&header, &index)?)
            .map_err(Damage::Decode)?;
        Ok(Some(operators))
    }

    /// Verify and decode checkpoint `id`.
    pub fn decode(&self, id: CheckpointId, bytes: &[u8]) -> Result<(Header, CheckpointData), Damage> {
        self.decode_part(id, bytes, &|_| None, &mut DecodeStats::default())
    }

    /// Verify and decode the key groups of checkpoint `id` that `select` asks for, per operator
    /// (operator-wide entries with a range that starts at 0). From format 5 only the blocks that
    /// overlap are decoded (counted in `stats`); before it, everything is, then filtered.
    pub fn decode_part(
        &self,
        id: CheckpointId,
        bytes: &[u8],
        select: Select<'_>,
        stats: &mut DecodeStats,
    ) -> Result<(Header, CheckpointData), Damage> {
        let (header, payload, area) = self.open_payload(id, bytes)?;
        let raw = Self::decompress(&header, &payload)?;
        drop(payload);
        if header.version >= 5 {
            stats.index_bytes += raw.len() as u64;
            let (host, operators) = ranged::read_index(header.version, &raw).map_err(Damage::Decode)?;
            let data = ranged::decode(host, operators, area, id, self.cipher.as_ref(), select, stats)?;
            return Ok((header, data));
        }
        stats.blocks += 1;
        stats.blocks_total += 1;
        stats.raw_bytes += raw.len() as u64;
        stats.raw_bytes_total += raw.len() as u64;
        let mut data = super::payload::decode(header.version, &raw).map_err(Damage::Decode)?;
        for o in &mut data.operators {
            if let Some(range) = select(&o.name) {
                ranged::keep_range(&mut o.state, o.key_groups, &range);
            }
        }
        Ok((header, data))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::checkpoint::{HostState, OperatorSnapshot};
    use crate::state::StateDelta;

    /// Plain keys (0.1 plugins), operator-wide and keyed scoped keys.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,12}",
            ".{0,8}".prop_map(|k| cairn_codec::scoped::compose(None, &k)),
            (prop::sample::select(vec!["a", "sensor-1", "k/9", ""]), ".{0,8}")
                .prop_map(|(s, k)| cairn_codec::scoped::compose(Some(s), &k)),
        ]
    }

    /// What a decode gives back for `d`: the same entries, grouped by key group.
    fn normalized(mut d: CheckpointData) -> CheckpointData {
        for o in &mut d.operators {
            // As written: sorted by key, a repeated key once (its later value), as applied.
            o.state.sets.sort_by(|a, b| a.0.cmp(&b.0));
            let mut sets: Vec<(crate::state::Key, crate::state::Value)> = Vec::new();
            for e in o.state.sets.drain(..) {
                match sets.last_mut() {
                    Some(prev) if prev.0 == e.0 => *prev = e,
                    _ => sets.push(e),
                }
            }
            o.state.sets = sets;
            o.state.deletes.sort();
            o.state.deletes.dedup();
        }
        d
    }

    fn data() -> impl Strategy<Value = CheckpointData> {
        let entries =
            proptest::collection::vec((key(), proptest::collection::vec(any::<u8>(), 0..64)), 0..40);
        let deletes = proptest::collection::vec(key(), 0..10);
        let op = (".{0,8}", any::<u32>(), 1u32..200, entries, deletes).prop_map(
            |(name, parallelism, key_groups, sets, deletes)| OperatorSnapshot {
                name,
                parallelism: parallelism % 8 + 1,
                expired: u64::from(parallelism),
                state_version: parallelism / 3,
                plugin_digest: "ab".repeat(32),
                config: "{\"x\":1}".into(),
                key_groups,
                state: StateDelta {
                    sets: sets.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                    deletes: deletes.into_iter().map(Into::into).collect(),
                },
            },
        );
        (
            any::<u64>(),
            any::<u64>(),
            any::<Option<i64>>(),
            proptest::collection::vec(op, 0..4),
        )
            .prop_map(|(off, len, wm, operators)| CheckpointData {
                host: HostState {
                    job: "j".into(),
                    source: crate::checkpoint::JsonlPosition {
                        input: "in.jsonl".into(),
                        offset: off,
                        line: off / 2,
                        batch_size: Some(64),
                    }
                    .to_source(),
                    output_len: len,
                    watermark: wm,
                    ..HostState::default()
                },
                operators,
            })
    }

    fn placement(id: u64, delta: bool) -> Placement {
        if delta {
            Placement {
                id,
                kind: Kind::Delta,
                base: 1,
                parent: Some(id - 1),
            }
        } else {
            Placement {
                id,
                kind: Kind::Full,
                base: id,
                parent: None,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trips_plain_and_encrypted(d in data(), id in 2u64..1000, delta in any::<bool>(), ms in any::<u64>()) {
            let key = EncryptionKey::from_bytes([9; 32]);
            for codec in [Codec::plain(), Codec::encrypted(&key)] {
                let bytes = codec.encode(placement(id, delta), ms, &d).unwrap();
                let (h, back) = codec.decode(id, &bytes).unwrap();
                prop_assert_eq!(normalized(back), normalized(d.clone()));
                prop_assert_eq!(h.sequence, id);
                prop_assert_eq!(h.created_ms, ms);
                prop_assert_eq!(h.encrypted(), codec.is_encrypted());
            }
        }

        #[test]
        fn any_flipped_bit_is_detected(d in data(), at in any::<prop::sample::Index>(), bit in 0u8..8, enc in any::<bool>()) {
            let codec = if enc { Codec::encrypted(&EncryptionKey::from_bytes([3; 32])) } else { Codec::plain() };
            let mut bytes = codec.encode(placement(5, true), 0, &d).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(codec.decode(5, &bytes).is_err());
        }

        #[test]
        fn truncation_is_detected(d in data(), cut in 1usize..100) {
            let codec = Codec::plain();
            let bytes = codec.encode(placement(5, false), 0, &d).unwrap();
            let keep = bytes.len().saturating_sub(cut);
            let err = codec.decode(5, &bytes[..keep]).unwrap_err();
            prop_assert!(matches!(err, Damage::Truncated { .. }), "{:?}", err);
        }
    }

    #[test]
    fn wrong_key_and_missing_key_are_distinct() {
        let d = CheckpointData::default();
        let a = Codec::encrypted(&EncryptionKey::from_bytes([1; 32]));
        let b = Codec::encrypted(&EncryptionKey::from_bytes([2; 32]));
        let bytes = a.encode(placement(1, false), 0, &d).unwrap();
        assert_eq!(b.decode(1, &bytes).unwrap_err(), Damage::Decrypt);
        assert_eq!(Codec::plain().decode(1, &bytes).unwrap_err(), Damage::NeedsKey);
        let plain = Codec::plain().encode(placement(1, false), 0, &d).unwrap();
        assert_eq!(a.decode(1, &plain).unwrap_err(), Damage::Unencrypted);
        // Two encryptions of the same data use different nonces.
        let again = a.encode(placement(1, false), 0, &d).unwrap();
        assert_ne!(bytes[64..76], again[64..76]);
    }
}
