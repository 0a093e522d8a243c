use anyhow::{Result, bail};
use cairn::checkpoint::{Codec, KeySource, open_store};
use cairn::store::CheckpointStore;
use clap::Args;

/// A checkpoint store and its key.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The store: memory:, file:<dir>, rocksdb:<dir>, redis://<host>:<port>[/<db>][?prefix=<p>&ttl=<secs>], s3://<bucket>[/<prefix>][?...].
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
    /// Read the key or passphrase from the environment variable named on the command line.
    pub fn source(&self) -> Result<KeySource> {
        let read = |var: &str| match std::env::var(var) {
            Ok(v) => Ok(v),
            Err(_) => bail!("environment variable ${var} is not set (it should hold the key or passphrase)"),
        };
        Ok(match (&self.encryption_key_env, &self.passphrase_env) {
            (Some(var), _) => KeySource::Hex {
                var: var.clone(),
                value: read(var)?,
            },
            (None, Some(var)) => {
                let value = read(var)?;
                if value.is_empty() {
                    bail!("the passphrase in ${var} is empty");
                }
                KeySource::Passphrase {
                    var: var.clone(),
                    value,
                }
            }
            (None, None) => KeySource::None,
        })
    }
}

impl StoreArgs {
    pub fn open(&self) -> Result<(Box<dyn CheckpointStore>, Codec)> {
        Ok(open_store(&self.store, &self.key.source()?)?)
    }
}
