use thiserror::Error;

use crate::store::{CheckpointId, StoreError};

/// What is wrong with a stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Damage {
    /// Shorter than its header says.
    #[error("truncated: {actual} bytes where the header promises {expected}")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Does not start with the magic bytes.
    #[error("not a Cairn checkpoint (bad magic bytes)")]
    BadMagic,
    /// Written by a newer Cairn.
    #[error(
        "format version {found} is newer than this Cairn understands ({supported}); upgrade cairn to read it"
    )]
    NewerFormat {
        /// Version in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The header's own checksum does not match.
    #[error("header checksum mismatch (the header was modified or damaged)")]
    HeaderChecksum,
    /// The payload checksum does not match.
    #[error(
        "payload checksum mismatch (stored {stored:08x}, computed {computed:08x}): the data was modified or damaged"
    )]
    PayloadChecksum {
        /// Stored CRC32.
        stored: u32,
        /// Computed CRC32.
        computed: u32,
    },
    /// A header field is impossible.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The id in the header is not the id it is stored under.
    #[error("stored as checkpoint {stored} but its header says {header}")]
    WrongId {
        /// Id under which it is stored.
        stored: CheckpointId,
        /// Id in its header.
        header: CheckpointId,
    },
    /// LZ4 decompression failed.
    #[error("payload does not decompress: {0}")]
    Decompress(String),
    /// The payload does not deserialize.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// Encrypted, but no key was given.
    #[error("the checkpoint is encrypted and no key was given")]
    NeedsKey,
    /// Decryption failed.
    #[error("decryption failed: wrong key, or the checkpoint was tampered with")]
    Decrypt,
    /// A block (format 5) did not authenticate.
    #[error("decryption failed for {0}: wrong key, or the checkpoint was tampered with")]
    BlockDecrypt(String),
    /// Not encrypted, but the store is configured for encryption.
    #[error(
        "the checkpoint is not encrypted but a key was given; refusing to mix plain and encrypted checkpoints"
    )]
    Unencrypted,
    /// A delta's parent (or the chain's base) is missing.
    #[error("its chain needs checkpoint {missing}, which is missing")]
    MissingParent {
        /// The missing id.
        missing: CheckpointId,
    },
    /// A parent in the chain is itself damaged.
    #[error("its chain needs checkpoint {parent}, which is damaged: {problem}")]
    DamagedParent {
        /// The damaged id.
        parent: CheckpointId,
        /// Its problem.
        problem: Box<Damage>,
    },
    /// The chain's links disagree.
    #[error("broken chain: {0}")]
    BrokenChain(String),
}

/// A checkpoint operation failed.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored checkpoint is damaged.
    #[error("checkpoint {id} in {store} is damaged: {damage}")]
    Damaged {
        /// The store's URL.
        store: String,
        /// The checkpoint.
        id: CheckpointId,
        /// What is wrong.
        damage: Damage,
    },
    /// The requested checkpoint does not exist.
    #[error("checkpoint {id} does not exist in {store}")]
    NotFound {
        /// The store's URL.
        store: String,
        /// The id asked for.
        id: CheckpointId,
    },
    /// No checkpoint of the store could be restored.
    #[error("no checkpoint in {store} can be restored: {}", problems.join("; "))]
    NoneValid {
        /// The store's URL.
        store: String,
        /// One line per checkpoint tried.
        problems: Vec<String>,
    },
    /// Encoding a checkpoint failed.
    #[error("could not encode checkpoint {id}: {message}")]
    Encode {
        /// The checkpoint.
        id: CheckpointId,
        /// Why.
        message: String,
    },
    /// The output could not be made durable before committing.
    #[error("could not sync the output before checkpoint {id}: {message}")]
    OutputSync {
        /// The checkpoint.
        id: CheckpointId,
        /// Why.
        message: String,
    },
    /// The background writer is gone.
    #[error("the checkpoint writer thread stopped unexpectedly")]
    WriterGone,
}
