//! Checkpoint bytes <-> [`CheckpointData`]: bincode, then LZ4, then (unencrypted) a CRC32.

use super::format::{FLAG_ENCRYPTED, FLAG_LZ4, HEADER_LEN, Header, Kind, VERSION};
use super::{CheckpointData, Damage};
use crate::store::CheckpointId;

/// Largest serialized payload accepted when decoding (guards against absurd length fields).
const MAX_RAW_LEN: u64 = 64 << 30;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes and decodes checkpoint bytes.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    _private: (),
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

    /// Serialize, compress and frame `data`.
    pub fn encode(&self, at: Placement, created_ms: u64, data: &CheckpointData) -> Result<Vec<u8>, String> {
        let raw = bincode::serde::encode_to_vec(data, bincode_config()).map_err(|e| e.to_string())?;
        let compressed = lz4_flex::block::compress(&raw);
        let header = Header {
            version: VERSION,
            kind: at.kind,
            flags: FLAG_LZ4,
            sequence: at.id,
            base: at.base,
            parent: at.parent,
            created_ms,
            raw_len: raw.len() as u64,
            payload_len: compressed.len() as u64,
            nonce: [0; 12],
        };
        let mut out = Vec::with_capacity(HEADER_LEN + compressed.len() + 4);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&compressed);
        out.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
        Ok(out)
    }

    /// Check the framing and integrity of `bytes` (stored as checkpoint `id`) and return its
    /// header, without decoding the payload.
    pub fn verify(&self, id: CheckpointId, bytes: &[u8]) -> Result<Header, Damage> {
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
        if header.flags & FLAG_ENCRYPTED != 0 {
            return Err(Damage::NeedsKey);
        }
        let end = HEADER_LEN + header.payload_len as usize;
        let payload = &bytes[HEADER_LEN..end];
        let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        let computed = crc32fast::hash(payload);
        if stored != computed {
            return Err(Damage::PayloadChecksum { stored, computed });
        }
        Ok(header)
    }

    /// Verify and decode checkpoint `id`.
    pub fn decode(&self, id: CheckpointId, bytes: &[u8]) -> Result<(Header, CheckpointData), Damage> {
        let header = self.verify(id, bytes)?;
        if header.raw_len > MAX_RAW_LEN || header.raw_len > header.payload_len.saturating_mul(256) + 64 {
            return Err(Damage::InvalidHeader(format!(
                "uncompressed length {} is impossible for {} stored bytes",
                header.raw_len, header.payload_len
            )));
        }
        let payload = &bytes[HEADER_LEN..HEADER_LEN + header.payload_len as usize];
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
        let (data, used): (CheckpointData, usize) = bincode::serde::decode_from_slice(&raw, bincode_config())
            .map_err(|e| Damage::Decode(e.to_string()))?;
        if used != raw.len() {
            return Err(Damage::Decode(format!("{} trailing bytes", raw.len() - used)));
        }
        Ok((header, data))
    }
}
