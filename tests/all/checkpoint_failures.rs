//! A checkpoint that fails in the background is never taken for a saved one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use cairn::checkpoint::{CheckpointConfig, Codec};
use cairn::runtime::{CheckpointSpec, ErrorPolicy, JobSpec, Triggers, run_job};
use cairn::store::{CheckpointId, CheckpointStore, MemoryStore, StoreError};
use cairn::{Engine, Plugin};
use cairn_tests::{expected_counts, plugin, synthetic_input};

/// The real memory store, with a switch that makes commits fail like an unreachable server.
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    /// Back up after the first write it refused.
    heals: bool,
}

impl CheckpointStore for Flaky {
    fn describe(&self) -> String {
        "flaky-memory:".into()
    }
    fn put(&mut self, id: CheckpointId, bytes: &[u8], chain: &[CheckpointId]) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            if self.heals {
                self.down.store(false, Ordering::SeqCst);
            }
            return Err(StoreError::Backend {
                store: self.describe(),
                action: format!("writing checkpoint {id}"),
                message: "connection refused".into(),
            });
        }
        self.inner.put(id, bytes, chain)
    }
    fn publish(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.inner.publish(id)
    }
    fn get(&self, id: CheckpointId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(id)
    }
    fn list(&self) -> Result<Vec<CheckpointId>, StoreError> {
        self.inner.list()
    }
    fn latest(&self) -> Result<Option<CheckpointId>, StoreError> {
        self.inner.latest()
    }
    fn delete(&mut self, id: CheckpointId) -> Result<(), StoreError> {
        self.inner.delete(id)
    }
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(name)
    }
    fn put_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(name, bytes)
    }
}

fn job(store: &Flaky, input: &std::path::Path, output: &std::path::Path, every: u64) -> Result<JobSpec> {
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, plugin("counter"))?;
    Ok(JobSpec {
        name: "flaky".into(),
        input: input.display().to_string(),
        output: output.display().to_string(),
        endpoints: None,
        operators: vec![plugin.operator()],
        key_groups: None,
        owned_groups: None,
        batch_size: Some(100),
        checkpoint: Some(CheckpointSpec {
            store: Box::new(store.clone()),
            codec: Codec::plain(),
            config: CheckpointConfig::default(),
            triggers: Triggers {
                interval: None,
                every_events: Some(every),
            },
            restore_from: None,
            restore_savepoint: None,
            accept_plugin_change: false,
            accept_config_change: false,
            migration_timeout: cairn::runtime::DEFAULT_MIGRATION_TIMEOUT,
            allow_dropped_state: false,
            renames: Vec::new(),
        }),
        stop: Arc::new(AtomicBool::new(false)),
        on_error: ErrorPolicy::Fail,
        input_limits: Default::default(),
        io: Default::default(),
        keep_open: false,
        ready: None,
        progress: None,
    })
}

#[test]
fn a_run_whose_last_checkpoint_failed_does_not_end_as_if_saved() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = synthetic_input(1000, 10, 0);
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(&input, &text)?;
    let store = Flaky {
        inner: MemoryStore::new(),
        down: Arc::new(AtomicBool::new(true)),
        heals: false,
    };
    // The trigger fires exactly at the last batch; that checkpoint fails in the background,
    // and so does the final one: the run must report it, not end as if its state were saved.
    let err = run_job(job(&store, &input, &output, 1000)?).expect_err("nothing could be saved");
    let msg = err.to_string();
    assert!(
        msg.contains("flaky-memory:") && msg.contains("connection refused"),
        "{msg}"
    );
    assert!(store.inner.list()?.is_empty());
    // With the store back, a re-run (nothing restored) produces the right output and saves it.
    store.down.store(false, Ordering::SeqCst);
    let report = run_job(job(&store, &input, &output, 1000)?)?;
    assert_eq!(report.restored_from, None);
    assert_eq!(std::fs::read_to_string(&output)?, expected_counts(&text)?);
    assert!(!store.inner.list()?.is_empty());
    // A failure in the middle: processing goes on, and the final checkpoint is full and covers
    // everything.
    // (The store refuses the first checkpoint, of the first 300 events, and takes the rest.)
    let store2 = Flaky {
        inner: MemoryStore::new(),
        down: Arc::new(AtomicBool::new(true)),
        heals: true,
    };
    let down = store2.down.clone();
    let out2 = dir.path().join("out2.jsonl");
    let report = run_job(job(&store2, &input, &out2, 300)?)?;
    assert!(!down.load(Ordering::SeqCst), "the first checkpoint was refused");
    let r = cairn::checkpoint::restore(&store2.inner, &Codec::plain(), None)?.expect("saved");
    assert_eq!(r.host.events_in, 1000);
    assert_eq!(report.stats.events_in, 1000);
    assert_eq!(std::fs::read_to_string(&out2)?, expected_counts(&text)?);
    Ok(())
}
