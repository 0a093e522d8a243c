//! Precompiled components on disk, so that a plugin's second start skips compilation.
//!
//! An artifact is stored as `<sha256 of the component>-<engine fingerprint>.cwasm` with a
//! trailing CRC32 of its bytes. The fingerprint covers the wasmtime version and every engine
//! setting that changes compiled code, so an artifact from another engine or version is never
//! looked up; wasmtime also checks compatibility when loading. A damaged or incompatible
//! artifact is deleted and the component recompiled. The directory is created private (0700):
//! loading an artifact runs its machine code, so only this user may write there.
//!
//! A plugin file's digest and declaration are remembered too (`digests-2/`, named by the file's device, inode,
//! size, modification and change times): loading an unchanged file by path then neither reads
//! nor hashes it (0.2 ms for the Rust counter, tens of ms for an 18 MB Python component). A
//! file whose modification time is under two seconds old is not remembered (it may still be
//! being written within the clock's resolution), and any write changes its change time.
//!
//! A hit maps the artifact (no copy into fresh memory): its checksum is computed over the
//! mapping and wasmtime then maps the same file for its code. For the counter plugin that is
//! 0.2 ms instead of 0.75 ms of reading, copying and deserializing. An artifact whose checksum
//! was verified (or that was written here) is remembered as such (`verified/`, named by the
//! artifact file's device, inode, size and times, like the digests): artifacts are written
//! whole and renamed into place, never modified, so the same file needs no second check.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::Engine;

/// Where artifacts live.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// How a component was obtained (for logs and benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a precompiled artifact.
    Hit,
    /// Compiled and stored.
    Miss,
    /// Compiled without a cache.
    Disabled,
}

impl ComponentCache {
    /// The cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, engine: &Engine, digest: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex::encode(digest), engine.fingerprint()))
    }

    /// Where the digest of the file with metadata `meta` is remembered, with its declaration.
    fn digest_path(&self, meta: &fs::Metadata) -> PathBuf {
        // `digests/` held the digest alone, before components declared anything.
        self.dir.join("digests-2").join(state_name(meta))
    }

    /// The marker of a verified artifact file with metadata `meta`.
    fn verified_path(&self, meta: &fs::Metadata) -> PathBuf {
        self.dir.join("verified").join(state_name(meta))
    }

    /// Remember that the artifact file with metadata `meta` is sound.
    fn mark_verified(&self, meta: &fs::Metadata) {
        let path = self.verified_path(meta);
        let r = create_private_dir(path.parent().expect("verified/ has a parent"))
            .and_then(|()| fs::write(&path, b""));
        if let Err(e) = r {
            tracing::debug!("could not mark {} verified: {e}", path.display());
        }
    }

    /// The SHA-256 of the file whose metadata is `meta`, and its declaration (the payload of
    /// its `cairn-operator` section, encoded again), as remembered when a file with exactly
    /// that metadata was last loaded.
    pub fn known_digest(&self, meta: &fs::Metadata) -> Option<([u8; 32], Vec<u8>)> {
        let bytes = fs::read(self.digest_path(meta)).ok()?;
        let (digest, declared) = bytes.split_at_checked(32)?;
        Some((digest.try_into().ok()?, declared.to_vec()))
    }

    /// Remember `digest` and `declared` for the file whose metadata is `meta` (read before its
    /// bytes were, and unchanged after). Recently modified files are not remembered.
    pub fn remember_digest(&self, meta: &fs::Metadata, digest: &[u8; 32], declared: &[u8]) {
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= std::time::Duration::from_secs(2));
        if !settled {
            return;
        }
        let path = self.digest_path(meta);
        let write = || -> std::io::Result<()> {
            create_private_dir(path.parent().expect("digests/ has a parent"))?;
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            fs::write(&tmp, [&digest[..], declared].concat())?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::debug!("could not remember the digest in {}: {e}", path.display());
        }
    }

    /// The stored artifact of the component with SHA-256 `digest`, if there is a sound one.
    pub fn artifact(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Component> {
        let path = self.path_for(engine, digest);
        let file = fs::File::open(&path).ok()?;
        let c = self.check(engine, &file, &path);
        if c.is_none() {
            tracing::debug!("discarding damaged or incompatible artifact {}", path.display());
            let _ = fs::remove_file(&path);
        }
        c
    }

    /// Load `bytes` as a component through the cache.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, CacheOutcome)> {
        self.load_digested(engine, bytes, &Sha256::digest(bytes).into())
    }

    /// [`load`](Self::load) when the caller has the SHA-256 of `bytes` already (hashing an 18 MB
    /// Python component takes ~20 ms of a warm start).
    pub fn load_digested(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        if let Some(c) = self.artifact(engine, digest) {
            return Ok((c, CacheOutcome::Hit));
        }
        let path = self.path_for(engine, digest);
        let component = Component::new(engine.wasmtime(), bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::debug!(
                "could not cache the compiled component in {}: {e}",
                self.dir.display()
            );
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn check(&self, engine: &Engine, file: &fs::File, path: &Path) -> Option<Component> {
        let meta = file.metadata().ok()?;
        if !self.verified_path(&meta).exists() {
            // SAFETY: the file is only ever replaced whole (written aside, then renamed), never
            // written in place, so the mapping does not change under us.
            let stored = unsafe { memmap2::Mmap::map(file) }.ok()?;
            let (artifact, crc) = stored.split_at_checked(stored.len().checked_sub(4)?)?;
            if crc32fast::hash(artifact).to_le_bytes() != crc {
                return None;
            }
            drop(stored);
            self.mark_verified(&meta);
        }
        // SAFETY: the artifact was written by `store` below into a directory only this user can
        // write, under a name that binds it to the component's bytes and this engine's settings,
        // and its checksum matches; wasmtime additionally rejects artifacts from an
        // incompatible engine or version (the trailing checksum is past the end of its image).
        unsafe { Component::deserialize_file(engine.wasmtime(), path) }.ok()
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut artifact = component.serialize().map_err(std::io::Error::other)?;
        let crc = crc32fast::hash(&artifact);
        artifact.extend_from_slice(&crc.to_le_bytes());
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&artifact)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Written and checksummed here: its first load needs no check either.
        self.mark_verified(&f.metadata()?);
        Ok(())
    }
}

/// What identifies a file's contents without reading them: device, inode, size, and the
/// modification and change times (seconds, nanoseconds). Any write changes the change time.
pub fn file_state(meta: &fs::Metadata) -> (u64, u64, u64, i64, i64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// A file's [`file_state`] as a file name.
fn state_name(meta: &fs::Metadata) -> String {
    let (dev, ino, size, mtime, mtime_ns, ctime, ctime_ns) = file_state(meta);
    format!("{dev:x}-{ino:x}-{size:x}-{mtime}.{mtime_ns}-{ctime}.{ctime_ns}")
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
