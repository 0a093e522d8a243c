//! An embedder's own source and sink under `run_job`: checkpointed and resumed like a file.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use cairn::Batch;
use cairn::checkpoint::{CheckpointConfig, Codec, HostState, SinkPosition, SourcePosition};
use cairn::runtime::io::{Endpoints, Opening, Pull};
use cairn::runtime::{
    CheckpointSpec, ErrorPolicy, JobSpec, Sink, SinkError, Source, SourceError, Triggers, encode_event,
    run_job,
};
use cairn::store::MemoryStore;
use cairn::{Engine, Plugin};
use cairn_tests::{expected_counts, plugin, synthetic_input};

/// Events from memory; its position is the index of the next one.
struct Memory {
    lines: Vec<String>,
    next: usize,
}

impl Source for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn position(&self) -> SourcePosition {
        SourcePosition {
            kind: "memory".into(),
            record: (self.next as u64).to_le_bytes().to_vec(),
        }
    }
    fn progress(&self) -> u64 {
        self.next as u64
    }
    fn next_into(&mut self, batch: &mut Batch, _wait: Duration) -> Result<Pull, SourceError> {
        let Some(line) = self.lines.get(self.next) else {
            return Ok(Pull::End);
        };
        let e = cairn::runtime::parse_line(line.as_bytes(), self.next as u64 + 1).expect("a valid event");
        batch.push(&e.key, e.ts, &e.value).expect("fits");
        self.next += 1;
        Ok(Pull::Event)
    }
    fn skip(&mut self) -> Result<Vec<u8>, SourceError> {
        Ok(Vec::new())
    }
}

/// Output lines collected in memory; its record is how many the checkpoint covers.
struct Collect(Arc<Mutex<Vec<String>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write_batch(&mut self, out: Batch) -> Result<(), SinkError> {
        let mut lines = self.0.lock().unwrap();
        for e in &out {
            let mut line = Vec::new();
            encode_event(e, &mut line);
            lines.push(String::from_utf8(line).unwrap());
        }
        Ok(())
    }
    fn prepare(&mut self) -> Result<(u64, SinkPosition), SinkError> {
        let n = self.0.lock().unwrap().len() as u64;
        Ok((
            0,
            SinkPosition {
                kind: "collect".into(),
                record: n.to_le_bytes().to_vec(),
            },
        ))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

struct Ends {
    lines: Vec<String>,
    out: Arc<Mutex<Vec<String>>>,
}

fn number(record: &[u8]) -> usize {
    u64::from_le_bytes(record.try_into().expect("8 bytes")) as usize
}

impl Endpoints for Ends {
    fn source_kind(&self) -> String {
        "memory".into()
    }
    fn open_source(
        &self,
        at: Option<&SourcePosition>,
        _: Opening<'_>,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(Memory {
            lines: self.lines.clone(),
            next: at.map_or(0, |p| number(&p.record)),
        }))
    }
    fn open_sink(&self, restored: Option<&HostState>, _: Opening<'_>) -> Result<Box<dyn Sink>, SinkError> {
        let kept = restored.map_or(0, |h| number(&h.sink.record));
        self.out.lock().unwrap().truncate(kept);
        Ok(Box::new(Collect(self.out.clone())))
    }
}

fn job(store: &MemoryStore, lines: Vec<String>, out: &Arc<Mutex<Vec<String>>>) -> Result<JobSpec> {
    let engine = Engine::new()?;
    let counter = Plugin::load(&engine, plugin("counter"))?;
    Ok(JobSpec {
        name: "embedded".into(),
        input: "memory".into(),
        output: "collect".into(),
        endpoints: Some(Box::new(Ends {
            lines,
            out: out.clone(),
        })),
        operators: vec![counter.operator()],
        key_groups: None,
        owned_groups: None,
        batch_size: Some(16),
        checkpoint: Some(CheckpointSpec {
            store: Box::new(store.clone()),
            codec: Codec::plain(),
            config: CheckpointConfig::default(),
            triggers: Triggers {
                interval: None,
                every_events: Some(32),
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
        keep_open: true,
        ready: None,
        progress: None,
    })
}

#[test]
fn an_embedders_source_and_sink_are_checkpointed_and_resumed() -> Result<()> {
    let text = synthetic_input(200, 7, 0);
    let all: Vec<String> = text.lines().map(str::to_string).collect();
    let store = MemoryStore::new();
    let out = Arc::new(Mutex::new(Vec::new()));
    let first = run_job(job(&store, all[..120].to_vec(), &out)?)?;
    assert_eq!(first.stats.events_in, 120);
    // Lines the sink wrote after the last checkpoint would be taken back on restore: add one
    // that no checkpoint covers.
    out.lock().unwrap().push("not covered\n".into());
    let second = run_job(job(&store, all.clone(), &out)?)?;
    assert!(second.restored_from.is_some());
    assert_eq!(
        second.events_in_at_start, 120,
        "resumed at the memory source's own position"
    );
    assert_eq!(out.lock().unwrap().concat(), expected_counts(&text)?);
    Ok(())
}
