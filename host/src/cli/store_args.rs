use anyhow::Result;
use cairn::checkpoint::{Codec, KeySource, open_store};
use cairn::store::CheckpointStore;
use clap::Args;

/// A checkpoint store and its key.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The store: memory:, file:<dir>, rocksdb:<dir>, redis://<host>:<port>[/<db>][?prefix=<p>&ttl=<secs>].
    #[arg(long)]
    pub store: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Where the encryption key comes from.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// Encrypt checkpoints with AES-256-GCM, key = 64 hex characters read from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_env")]
    pub encryption_key_env: Option<String>,
    /// Encrypt checkpoints with a key derived (Argon2id) from the passphrase in this environment variable.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

impl KeyArgs {
    pub fn source(&self) -> Result<KeySource> {
        Ok(KeySource::from_env(
            self.encryption_key_env.as_deref(),
            self.passphrase_env.as_deref(),
        )?)
    }
}

impl StoreArgs {
    pub fn open(&self) -> Result<(Box<dyn CheckpointStore>, Codec)> {
        Ok(open_store(&self.store, &self.key.source()?)?)
    }
}
