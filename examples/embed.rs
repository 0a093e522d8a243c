//! Embedding Cairn: load an operator, feed it events, checkpoint its state into a store,
//! restore it into a fresh instance (as after a crash) and carry on.
//!
//! `cargo run --release -p cairn --example embed -- dist/plugins/counter.wasm ./ckpt`
//! (the tests run it with the plugin they built).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn::checkpoint::{CheckpointConfig, Checkpointer, Codec, HostState, OperatorPart, restore};
use cairn::store::FileStore;
use cairn::{Batch, Engine, Plugin};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let wasm = PathBuf::from(
        args.next()
            .context("usage: embed <plugin.wasm> <checkpoint dir>")?,
    );
    let dir = PathBuf::from(
        args.next()
            .context("usage: embed <plugin.wasm> <checkpoint dir>")?,
    );

    // Load (compiled once, checked against the WIT contract) and instantiate.
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, &wasm)?;
    let mut op = plugin.operator().config("{}").build()?;

    // Process a batch: one transaction on the operator's state.
    let mut batch = Batch::new();
    for (key, ts) in [("a", 1), ("b", 2), ("a", 3)] {
        batch.push(key, ts, b"{}")?;
    }
    for e in &op.process_batch(&batch)? {
        println!("{} {} {}", e.key, e.ts, String::from_utf8_lossy(e.value));
    }

    // Checkpoint: the state (and whatever position the application keeps) into a store.
    let store = FileStore::open(&dir)?;
    let mut checkpointer =
        Checkpointer::start(Box::new(store), Codec::plain(), CheckpointConfig::default(), None)?;
    let host = HostState {
        job: "embed".into(),
        events_in: 3,
        ..HostState::default()
    };
    let digest = op.plugin().digest_hex();
    let (name, config, state) = op.parts_mut();
    let part = OperatorPart::single(name, digest, config, state);
    let info = checkpointer.checkpoint_now(host, vec![part], None)?;
    println!("checkpoint {} written", info.id);
    drop(checkpointer);
    drop(op);

    // Restore into a fresh instance, as a restarted process would.
    let store = FileStore::open(&dir)?;
    let Some(restored) = restore(&store, &Codec::plain(), None)? else {
        bail!("no checkpoint in {}", dir.display());
    };
    let state = restored
        .operators
        .into_iter()
        .next()
        .context("the checkpoint holds no operator")?
        .state;
    let mut op = plugin.operator().config("{}").build_with_state(state)?;
    let mut more = Batch::new();
    more.push("a", 4, b"{}")?;
    for e in &op.process_batch(&more)? {
        println!("{} {} {}", e.key, e.ts, String::from_utf8_lossy(e.value));
    }
    Ok(())
}
