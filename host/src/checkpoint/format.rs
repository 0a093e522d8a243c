//! The binary layout of a checkpoint (all integers little-endian):
//!
//! ```text
//! offset size field
//!      0    8 magic "CAIRNCKP"
//!      8    2 format version (6; 1 to 5 are still read)
//!     10    1 kind: 0 full, 1 delta
//!     11    1 flags: bit 0 LZ4-compressed payload, bit 1 AES-256-GCM-encrypted payload
//!     12    4 how long this process took to write checkpoint `sequence - 1`, µs + 1
//!               (0: not recorded; readers before it ignored these bytes, then always 0)
//!     16    8 sequence (the checkpoint id)
//!     24    8 base: id of the full checkpoint this chain starts from (itself for a full)
//!     32    8 parent: id of the previous checkpoint of the chain (u64::MAX for a full)
//!     40    8 creation time, ms since the Unix epoch
//!     48    8 length of the serialized payload before compression (from format 5: the index's)
//!     56    8 length of the stored payload
//!     64   12 AES-GCM nonce (zero when not encrypted)
//!     76    4 CRC32 of bytes 0..76
//!     80    … payload
//!      …    4 CRC32 of the payload (only when not encrypted; GCM's tag covers encrypted ones)
//! ```
//! When encrypted, bytes 0..80 are the associated data of what the header's nonce seals (the
//! payload before format 5, the index from format 5 on), so the header cannot be altered
//! either. The payload's own layout: `ranged.rs` (formats 5 and 6), `payload.rs` (formats 1 to 4).

use super::Damage;
use crate::store::CheckpointId;

/// Magic bytes at the start of every checkpoint.
pub const MAGIC: &[u8; 8] = b"CAIRNCKP";
/// The format version this build writes and the newest it reads.
pub const VERSION: u16 = 6;
/// Header length.
pub const HEADER_LEN: usize = 80;
/// Flag: payload is LZ4 block-compressed.
pub const FLAG_LZ4: u8 = 1;
/// Flag: payload is AES-256-GCM encrypted.
pub const FLAG_ENCRYPTED: u8 = 2;
/// `parent` of a full checkpoint.
pub const NO_PARENT: u64 = u64::MAX;

/// Full or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Every key of every operator.
    Full,
    /// The keys set or removed since the parent.
    Delta,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Full => "full",
            Kind::Delta => "delta",
        })
    }
}

/// A checkpoint's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Full or delta.
    pub kind: Kind,
    /// Flags (`FLAG_*`).
    pub flags: u8,
    /// The checkpoint id.
    pub sequence: CheckpointId,
    /// The full checkpoint the chain starts from.
    pub base: CheckpointId,
    /// The previous checkpoint of the chain (`None` for a full).
    pub parent: Option<CheckpointId>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Serialized payload length before compression.
    pub raw_len: u64,
    /// Stored payload length.
    pub payload_len: u64,
    /// AES-GCM nonce.
    pub nonce: [u8; 12],
    /// How long the write of checkpoint `sequence - 1` took (cut to commit), µs, when the
    /// process that wrote this one wrote that one too.
    pub previous_write_us: Option<u32>,
}

impl Header {
    /// Whether the payload is encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Total stored length: header, payload and (if unencrypted) the trailing checksum.
    pub fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + self.payload_len + if self.encrypted() { 0 } else { 4 }
    }

    /// The 80 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10] = match self.kind {
            Kind::Full => 0,
            Kind::Delta => 1,
        };
        b[11] = self.flags;
        let previous = self.previous_write_us.map_or(0, |us| us.saturating_add(1));
        b[12..16].copy_from_slice(&previous.to_le_bytes());
        b[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        b[24..32].copy_from_slice(&self.base.to_le_bytes());
        b[32..40].copy_from_slice(&self.parent.unwrap_or(NO_PARENT).to_le_bytes());
        b[40..48].copy_from_slice(&self.created_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.raw_len.to_le_bytes());
        b[56..64].copy_from_slice(&self.payload_len.to_le_bytes());
        b[64..76].copy_from_slice(&self.nonce);
        let crc = crc32fast::hash(&b[0..76]);
        b[76..80].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and check a header at the start of `bytes` (which may be the whole checkpoint).
    pub fn decode(bytes: &[u8]) -> Result<Self, Damage> {
        if bytes.len() < 8 || &bytes[0..8] != MAGIC {
            return Err(if bytes.len() < 8 && MAGIC.starts_with(bytes) {
                Damage::Truncated {
                    expected: HEADER_LEN as u64,
                    actual: bytes.len() as u64,
                }
            } else {
                Damage::BadMagic
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(Damage::Truncated {
                expected: HEADER_LEN as u64,
                actual: bytes.len() as u64,
            });
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let stored_crc = u32::from_le_bytes([bytes[76], bytes[77], bytes[78], bytes[79]]);
        if crc32fast::hash(&bytes[0..76]) != stored_crc {
            // A newer format may lay the header out differently: report the version first.
            if version > VERSION {
                return Err(Damage::NewerFormat {
                    found: version,
                    supported: VERSION,
                });
            }
            return Err(Damage::HeaderChecksum);
        }
        if version > VERSION {
            return Err(Damage::NewerFormat {
                found: version,
                supported: VERSION,
            });
        }
        if version == 0 {
            return Err(Damage::InvalidHeader("format version 0".into()));
        }
        let kind = match bytes[10] {
            0 => Kind::Full,
            1 => Kind::Delta,
            k => return Err(Damage::InvalidHeader(format!("unknown kind {k}"))),
        };
        let flags = bytes[11];
        if flags & !(FLAG_LZ4 | FLAG_ENCRYPTED) != 0 {
            return Err(Damage::InvalidHeader(format!("unknown flags {flags:#04x}")));
        }
        let parent = match u64_at(32) {
            NO_PARENT => None,
            p => Some(p),
        };
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&bytes[64..76]);
        let h = Header {
            version,
            kind,
            flags,
            sequence: u64_at(16),
            base: u64_at(24),
            parent,
            created_ms: u64_at(40),
            raw_len: u64_at(48),
            payload_len: u64_at(56),
            nonce,
            previous_write_us: match u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) {
                0 => None,
                us => Some(us - 1),
            },
        };
        match (h.kind, h.parent) {
            (Kind::Full, Some(_)) => {
                return Err(Damage::InvalidHeader("a full checkpoint with a parent".into()));
            }
            (Kind::Delta, None) => return Err(Damage::InvalidHeader("a delta without a parent".into())),
            (Kind::Full, None) if h.base != h.sequence => {
                return Err(Damage::InvalidHeader(
                    "a full checkpoint whose base is another".into(),
                ));
            }
            _ => {}
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: VERSION,
            kind: Kind::Delta,
            flags: FLAG_LZ4,
            sequence: 7,
            base: 3,
            parent: Some(6),
            created_ms: 1_700_000_000_000,
            raw_len: 1234,
            payload_len: 99,
            nonce: [0; 12],
            previous_write_us: Some(12_345),
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn every_single_byte_flip_in_the_header_is_detected() {
        let bytes = sample().encode();
        for i in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut b = bytes;
                b[i] ^= 1 << bit;
                assert!(
                    Header::decode(&b).is_err(),
                    "flip of byte {i} bit {bit} undetected"
                );
            }
        }
    }
}
