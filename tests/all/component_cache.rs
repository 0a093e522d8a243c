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
    let files: Vec<_> = fs::read_dir(cache.dir())?.flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1);
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
    assert_eq!(fs::read_dir(cache.dir())?.count(), 2);

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
