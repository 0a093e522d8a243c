use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{CheckpointId, CheckpointStore, StoreError};

const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".cairn";
const LATEST: &str = "LATEST";

/// Checkpoints as files in a directory: `ckpt-<id, 20 digits>.cairn`, a `LATEST` file naming
/// the newest committed one, and `meta-<name>` blobs.
///
/// Every file is written to a temporary name, fsynced, renamed into place, and the directory
/// is fsynced; `LATEST` is written last. A crash leaves at worst a stray temporary file
/// (ignored and removed on the next open) or a checkpoint that `LATEST` does not name yet.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    url: String,
}

impl FileStore {
    /// Open (creating if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let url = format!("file:{}", dir.display());
        fs::create_dir_all(&dir).map_err(|e| StoreError::backend(&url, "creating the directory", e))?;
        let store = Self { dir, url };
        // Remove temporaries left by a crash.
        if let Ok(entries) = fs::read_dir(&store.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of checkpoint `id`.
    fn path_of(&self, id: CheckpointId) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
    }

    fn err(&self, action: impl Into<String>, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(&self.url, action, e)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!(".tmp-{name}-{}", std::process::id()));
        let dest = self.dir.join(name);
        let action = || format!("writing {}", dest.display());
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| self.err(action(), e))?;
        f.write_all(bytes).map_err(|e| self.err(action(), e))?;
        f.sync_all().map_err(|e| self.err(action(), e))?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(|e| self.err(action(), e))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.err("syncing the directory", e))
    }

    fn read_opt(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("reading {}", path.display()), e)),
        }
    }
}

impl CheckpointStore for FileStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn put(&mut self, id: CheckpointId, bytes: &[u8], _chain: &[CheckpointId]) -> Result<(), StoreError> {
        self.write_atomic(&format!("{PREFIX}{id:020}{SUFFIX}"), bytes)
    }

    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.write_atomic(LATEST, format!("{id}\n").as_bytes())
    }

    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_opt(&self.path_of(id))
    }

    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.err("listing the directory", e))?;
        let mut ids: Vec<CheckpointId> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        let path = self.dir.join(LATEST);
        match self.read_opt(&path)? {
            None => Ok(None),
            Some(b) => {
                let text = String::from_utf8_lossy(&b);
                text.trim().parse().map(Some).map_err(|_| {
                    self.err(
                        format!("reading {}", path.display()),
                        format!(
                            "it holds {:?}, not a checkpoint id; delete it to use the newest checkpoint",
                            text.trim()
                        ),
                    )
                })
            }
        }
    }

    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        match fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(format!("deleting checkpoint {id}"), e)),
        }
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_opt(&self.dir.join(format!("meta-{name}")))
    }

    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_atomic(&format!("meta-{name}"), bytes)
    }
}
