//! The on-disk component cache: a second load skips compilation, and a damaged or foreign
//! artifact is never used (it is replaced).

use std::fs;

use anyhow::Result;
use cairn::engine::{CacheOutcome, ComponentCache};
use cairn::{Engine, EngineOptions, Event, Plugin};
use cairn_tests::plugin;

fn works(engine: &Engine) -> Result<()> {
    let mut op = Plugin::load(engine, plugin("counter"))?.operator().build()?;
    let out = op.process(&[Event {
        key: "a".into(),
        ts: 1,
        value: b"1".to_vec(),
    }])?;
    assert_eq!(out[0].value, br#"{"count":1}"#);
    Ok(())
}

#[test]
fn second_load_hits_and_damage_or_foreign_artifacts_are_recompiled() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = ComponentCache::new(dir.path().join("c"));
    let engine = Engine::new()?.with_cache(Some(cache.clone()));
    let bytes = fs::read(plugin("counter"))?;
    assert_eq!(engine.compile_component(&bytes)?.1, CacheOutcome::Miss);
    assert_eq!(engine.compile_component(&bytes)?.1, CacheOutcome::Hit);
    works(&engine)?;

    // The directory is private.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(cache.dir())?.permissions().mode() & 0o777, 0o700);

    // Damage the artifact: detected, recompiled, and the plugin still works.
    let artifacts = || -> Result<Vec<std::path::PathBuf>> {
        Ok(fs::read_dir(cache.dir())?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect())
    };
    let files = artifacts()?;
    assert_eq!(files.len(), 1);
    // The artifact written is remembered as verified (by its file's identity and times), so
    // a hit does not checksum it again; any write to it changes those and checks it afresh.
    assert_eq!(fs::read_dir(cache.dir().join("verified"))?.count(), 1);
    let mut b = fs::read(&files[0])?;
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    fs::write(&files[0], &b)?;
    assert_eq!(engine.compile_component(&bytes)?.1, CacheOutcome::Miss);
    assert_eq!(engine.compile_component(&bytes)?.1, CacheOutcome::Hit);
    works(&engine)?;

    // An engine with other settings (fuel) never picks up this engine's artifact.
    let fuel = Engine::with_options(EngineOptions { fuel: true })?.with_cache(Some(cache.clone()));
    assert_ne!(fuel.fingerprint(), engine.fingerprint());
    assert_eq!(fuel.compile_component(&bytes)?.1, CacheOutcome::Miss);
    assert_eq!(artifacts()?.len(), 2);

    // A foreign artifact planted under this engine's name is rejected by the checksum or by
    // wasmtime, and replaced.
    let ours = fs::read_dir(cache.dir())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(&engine.fingerprint()))
        .expect("our artifact");
    fs::write(&ours, b"not an artifact at all")?;
    assert_eq!(engine.compile_component(&bytes)?.1, CacheOutcome::Miss);
    works(&engine)?;

    // Without a cache: always compiled.
    let plain = Engine::new()?.with_cache(None);
    assert_eq!(plain.compile_component(&bytes)?.1, CacheOutcome::Disabled);
    Ok(())
}

/// A plugin file loaded by path is hashed once: while its metadata (inode, size, modification
/// and change times) is unchanged, its remembered digest finds the artifact; a changed file
/// is read and hashed again, and a file modified moments ago is not remembered.
#[test]
fn an_unchanged_plugin_file_is_not_hashed_again_and_a_changed_one_is() -> Result<()> {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir()?;
    let cache = ComponentCache::new(dir.path().join("c"));
    let engine = Engine::new()?.with_cache(Some(cache.clone()));
    let digests = dir.path().join("c/digests-2");
    let remembered = || fs::read_dir(&digests).map_or(0, |d| d.count());
    let file = dir.path().join("op.wasm");
    let age = |f: &std::path::Path| -> Result<()> {
        fs::File::options()
            .write(true)
            .open(f)?
            .set_modified(SystemTime::now() - Duration::from_secs(10))?;
        Ok(())
    };
    fs::copy(plugin("counter"), &file)?;
    let counter = Plugin::load(&engine, &file)?;
    assert_eq!(remembered(), 0, "a file written moments ago is not remembered");
    age(&file)?;
    assert_eq!(Plugin::load(&engine, &file)?.digest(), counter.digest());
    assert_eq!(remembered(), 1);

    // The remembered digest is what a load trusts: planted as the window plugin's (whose
    // artifact is in the cache), the unchanged file loads as that plugin.
    let window = Plugin::load(&engine, plugin("window"))?;
    let memo = fs::read_dir(&digests)?
        .flatten()
        .map(|e| e.path())
        .find(|p| fs::read(p).is_ok_and(|d| d == counter.digest()))
        .expect("the counter file's remembered digest");
    fs::write(&memo, window.digest())?;
    assert_eq!(Plugin::load(&engine, &file)?.digest(), window.digest());
    fs::write(&memo, counter.digest())?;

    // Changed in place (same inode), even when dated back: read and hashed again.
    fs::copy(plugin("dedup"), &file)?;
    age(&file)?;
    let dedup = Plugin::load(&engine, &file)?;
    assert_eq!(
        dedup.digest(),
        Plugin::load(&Engine::new()?, plugin("dedup"))?.digest()
    );
    assert_ne!(dedup.digest(), counter.digest());

    // What a file declares is remembered with its digest: a load that neither reads nor
    // hashes it still knows its operator name and state version.
    let v1 = dir.path().join("v1.wasm");
    fs::copy(plugin("counter-v1"), &v1)?;
    age(&v1)?;
    let known = remembered();
    let first = Plugin::load(&engine, &v1)?;
    let again = Plugin::load(&engine, &v1)?;
    assert_eq!(remembered(), known + 1);
    assert_eq!((again.name(), again.state_version()), ("counter", 1));
    assert_eq!(again.declared(), first.declared());
    works(&engine)
}
