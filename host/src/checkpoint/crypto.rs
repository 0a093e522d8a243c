//! Encryption at rest: AES-256-GCM over each checkpoint's payload, with a key given as hex or
//! derived from a passphrase with Argon2id. The store's `encryption` metadata records that the
//! store is encrypted, the KDF parameters and salt (never the key), and a key check, so that a
//! wrong key, a missing key, or mixing plain and encrypted checkpoints is refused up front.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::{CheckpointStore, StoreError};

/// Name of the store metadata blob describing encryption.
pub const META: &str = "encryption";
const CHECK_PLAINTEXT: &[u8] = b"cairn key check v1";

/// Why a key could not be set up or does not fit the store. Never contains key material.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The hex key is malformed.
    #[error(
        "the encryption key in ${var} must be 64 hex characters (32 bytes); it has {len} characters{hint}"
    )]
    BadHex {
        /// The environment variable.
        var: String,
        /// Length found.
        len: usize,
        /// Extra advice.
        hint: &'static str,
    },
    /// The store is encrypted and no key was given.
    #[error("store {0} is encrypted and no key was given")]
    NeedsKey(String),
    /// The key does not open the store.
    #[error("the key does not open store {0}: wrong key or passphrase")]
    WrongKey(String),
    /// A passphrase store opened with a raw key, or the reverse.
    #[error("store {store} was encrypted with {}, not with {}", .was.name(), .given.name())]
    WrongKind {
        /// The store.
        store: String,
        /// How it was encrypted.
        was: KeyKind,
        /// What was given.
        given: KeyKind,
    },
    /// The store holds plain checkpoints and a key was given.
    #[error(
        "store {0} already holds unencrypted checkpoints; refusing to mix encrypted ones into it. Use a new \
         store for encrypted checkpoints (or `cairn checkpoints copy` with a key), or run without a key"
    )]
    PlainStore(String),
    /// The metadata is unreadable.
    #[error("store {store}: encryption metadata is damaged: {message}")]
    BadMeta {
        /// The store.
        store: String,
        /// Why.
        message: String,
    },
    /// Key derivation failed.
    #[error("deriving the key from the passphrase failed: {0}")]
    Kdf(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A 256-bit key. Its `Debug` does not show it.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Argon2id parameters and salt, stored in the store's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
    /// Random salt, hex.
    pub salt: String,
}

impl KdfParams {
    /// Fresh parameters with a random 16-byte salt (Argon2id, 64 MiB, 3 passes).
    pub fn generate() -> Result<Self, KeyError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| KeyError::Kdf(e.to_string()))?;
        Ok(Self {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
            salt: hex::encode(salt),
        })
    }
}

impl EncryptionKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from 64 hex characters; `var` names where it came from (for errors).
    pub fn from_hex(text: &str, var: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        let bad = |hint| KeyError::BadHex {
            var: var.to_string(),
            len: t.len(),
            hint,
        };
        if t.len() != 64 {
            return Err(bad(""));
        }
        let bytes = hex::decode(t).map_err(|_| bad(" (not all of them are hex digits)"))?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        Ok(Self(k))
    }

    /// A key derived from a passphrase with Argon2id.
    pub fn from_passphrase(passphrase: &[u8], params: &KdfParams) -> Result<Self, KeyError> {
        let salt = hex::decode(&params.salt).map_err(|e| KeyError::Kdf(format!("bad salt: {e}")))?;
        let p = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
            .hash_password_into(passphrase, &salt, &mut out)
            .map_err(|e| KeyError::Kdf(e.to_string()))?;
        Ok(Self(out))
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        // A 32-byte slice always makes an AES-256 key.
        Aes256Gcm::new(&self.0.into())
    }
}

/// Encrypt `plain` with a fresh random nonce; returns (nonce, ciphertext + tag).
pub(crate) fn seal(cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Result<([u8; 12], Vec<u8>), String> {
    let nonce = fresh_nonce()?;
    Ok((nonce, seal_with(cipher, &nonce, aad, plain)?))
}

/// 96 random bits from the OS.
pub(crate) fn fresh_nonce() -> Result<[u8; 12], String> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for the nonce: {e}"))?;
    Ok(nonce)
}

/// Encrypt `plain` with the given nonce (which must never be reused with the same key).
pub(crate) fn seal_with(
    cipher: &Aes256Gcm,
    nonce: &[u8; 12],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, String> {
    cipher
        .encrypt(&Nonce::from(*nonce), Payload { msg: plain, aad })
        .map_err(|_| "encryption failed".to_string())
}

/// Decrypt and authenticate.
pub(crate) fn open(cipher: &Aes256Gcm, nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    cipher
        .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad })
        .ok()
}

/// The store's `encryption` metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    cipher: String,
    /// `None` when the key is given raw.
    kdf: Option<KdfParams>,
    /// nonce || AES-GCM(key, "cairn key check v1"), hex.
    check: String,
}

/// The two ways a store can be encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A raw 256-bit key (64 hex characters).
    Raw,
    /// A passphrase stretched with Argon2id.
    Passphrase,
}

impl KeyKind {
    /// As messages say it.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Raw => "a raw key",
            KeyKind::Passphrase => "a passphrase",
        }
    }
}

/// How the user gives the key.
#[derive(Clone, Default)]
pub enum KeySource {
    /// No encryption.
    #[default]
    None,
    /// 64 hex characters.
    Hex {
        /// Where they came from, for messages (the CLI: an environment variable's name).
        var: String,
        /// Its value.
        value: String,
    },
    /// A passphrase (not empty).
    Passphrase {
        /// Where it came from, for messages.
        var: String,
        /// Its value.
        value: String,
    },
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::None => f.write_str("None"),
            KeySource::Hex { var, .. } => write!(f, "Hex(${var})"),
            KeySource::Passphrase { var, .. } => write!(f, "Passphrase(${var})"),
        }
    }
}

/// Settle encryption for `store`: check the given key against the store's metadata (or, for a
/// store without checkpoints, record it), and return the key to use (`None`: plain).
pub fn setup(store: &mut dyn CheckpointStore, source: &KeySource) -> Result<Option<EncryptionKey>, KeyError> {
    let name = store.describe();
    let meta: Option<Meta> = match store.get_meta(META)? {
        None => None,
        Some(b) => Some(serde_json::from_slice(&b).map_err(|e| KeyError::BadMeta {
            store: name.clone(),
            message: e.to_string(),
        })?),
    };
    match (meta, source) {
        (None, KeySource::None) => Ok(None),
        (Some(_), KeySource::None) => Err(KeyError::NeedsKey(name)),
        (None, src) => {
            if !store.list()?.is_empty() {
                return Err(KeyError::PlainStore(name));
            }
            let (key, kdf) = match src {
                KeySource::Hex { var, value } => (EncryptionKey::from_hex(value, var)?, None),
                KeySource::Passphrase { value, .. } => {
                    let kdf = KdfParams::generate()?;
                    (EncryptionKey::from_passphrase(value.as_bytes(), &kdf)?, Some(kdf))
                }
                KeySource::None => return Ok(None),
            };
            let (nonce, ct) = seal(&key.cipher(), name_aad(), CHECK_PLAINTEXT).map_err(KeyError::Kdf)?;
            let mut check = nonce.to_vec();
            check.extend_from_slice(&ct);
            let meta = Meta {
                cipher: "aes-256-gcm".into(),
                kdf,
                check: hex::encode(check),
            };
            let bytes = serde_json::to_vec(&meta).map_err(|e| KeyError::Kdf(e.to_string()))?;
            store.put_meta(META, &bytes)?;
            Ok(Some(key))
        }
        (Some(meta), src) => {
            let key = match (src, &meta.kdf) {
                (KeySource::Hex { var, value }, None) => EncryptionKey::from_hex(value, var)?,
                (KeySource::Passphrase { value, .. }, Some(kdf)) => {
                    EncryptionKey::from_passphrase(value.as_bytes(), kdf)?
                }
                (KeySource::Hex { .. }, Some(_)) => {
                    return Err(KeyError::WrongKind {
                        store: name,
                        was: KeyKind::Passphrase,
                        given: KeyKind::Raw,
                    });
                }
                (KeySource::Passphrase { .. }, None) => {
                    return Err(KeyError::WrongKind {
                        store: name,
                        was: KeyKind::Raw,
                        given: KeyKind::Passphrase,
                    });
                }
                (KeySource::None, _) => return Err(KeyError::NeedsKey(name)),
            };
            let check = hex::decode(&meta.check).map_err(|e| KeyError::BadMeta {
                store: name.clone(),
                message: e.to_string(),
            })?;
            if check.len() < 12 {
                return Err(KeyError::BadMeta {
                    store: name,
                    message: "key check too short".into(),
                });
            }
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&check[..12]);
            match open(&key.cipher(), &nonce, name_aad(), &check[12..]) {
                Some(p) if p == CHECK_PLAINTEXT => Ok(Some(key)),
                _ => Err(KeyError::WrongKey(name)),
            }
        }
    }
}

/// Associated data of the key check (fixed, so a store can be copied elsewhere).
fn name_aad() -> &'static [u8] {
    b"cairn:encryption-meta"
}

/// Copy the encryption metadata of `from` to `to` (for `checkpoints copy`).
pub fn copy_meta(from: &dyn CheckpointStore, to: &mut dyn CheckpointStore) -> Result<(), KeyError> {
    if let Some(b) = from.get_meta(META)? {
        to.put_meta(META, &b)?;
    }
    Ok(())
}
