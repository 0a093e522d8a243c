use std::path::PathBuf;

use super::{CheckpointStore, FileStore, MemoryStore, StoreError};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`
    Memory,
    /// `file:<dir>`
    File(PathBuf),
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(dir) = url.strip_prefix("file:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err(bad("file: needs a directory, e.g. file:./checkpoints"));
            }
            return Ok(StoreUrl::File(PathBuf::from(dir)));
        }
        Err(bad("unknown scheme"))
    }
}

/// Open the store a URL names.
pub fn open(url: &str) -> Result<Box<dyn CheckpointStore>, StoreError> {
    Ok(match url.parse::<StoreUrl>()? {
        StoreUrl::Memory => Box::new(MemoryStore::new()),
        StoreUrl::File(dir) => Box::new(FileStore::open(dir)?),
    })
}
