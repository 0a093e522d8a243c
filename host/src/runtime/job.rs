//! A checkpointed run: restore, resume the input and output where the checkpoint left them,
//! process with checkpoint triggers, and take a final checkpoint on every way out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ahead::{Bad, Cut, ReadAhead};
use super::io::{self, Opening, Sink};
pub use super::job_spec::{
    CheckpointSpec, DEFAULT_BATCH_SIZE, ErrorPolicy, FINAL_WATERMARK, JobError, JobReport, JobSpec, Mismatch,
    ParallelismError, Progress, ProgressHook, Triggers,
};
use super::resume::{build_stages, check_jsonl_resume, check_parallelism, key_groups, restore_job};
use super::run::feed_batch;
use super::{JsonlSink, Pipeline, RunError, RunStats, Stage};
use crate::Batch;
use crate::checkpoint::{
    CheckpointError, Checkpointer, CommitInfo, HostState, JsonlPosition, SourcePosition,
};
use crate::store::StoreError;

struct Ckpt {
    checkpointer: Checkpointer,
    triggers: Triggers,
    last_at: Instant,
    events_at_last: u64,
    committed: Vec<CommitInfo>,
    max_pause: Duration,
    /// Something is not saved in any checkpoint yet: the newest attempt failed, or the job
    /// restored with other operators than its checkpoint held.
    unsaved: bool,
    failures: u64,
}

impl Ckpt {
    /// Note the outcome of a checkpoint. A failed one leaves the changes unsaved (the next
    /// checkpoint is full); one refused because another job took the store over ends the job.
    /// Returns whether a checkpoint committed (its sink's output is then made visible).
    fn record(&mut self, r: Option<Result<CommitInfo, CheckpointError>>) -> Result<bool, CheckpointError> {
        match r {
            Some(Ok(info)) => {
                super::metrics::checkpoint(&info);
                self.committed.push(info);
                self.unsaved = false;
                return Ok(true);
            }
            Some(Err(e @ CheckpointError::Store(StoreError::Conflict { .. }))) => return Err(e),
            Some(Err(_)) => {
                super::metrics::checkpoint_failed();
                self.unsaved = true;
                self.failures += 1;
            }
            None => {}
        }
        Ok(false)
    }
}

/// Run a job to the end of its input (or until `stop` is set), checkpointing as configured.
///
/// With checkpoints, the newest restorable checkpoint (or `restore_from`) is restored first:
/// operator state, counters and watermark come back, the output is truncated to the length the
/// checkpoint recorded and the input is read from the recorded offset, so a job killed at any
/// moment and run again produces exactly the output of an uninterrupted run.
///
/// On every way out a final checkpoint is taken at a consistent position: at end of input, on
/// `stop`, before a malformed line (so a fixed input resumes there), and before a failed batch
/// (whose state writes were rolled back).
pub fn run_job(spec: JobSpec) -> Result<JobReport, JobError> {
    let JobSpec {
        name,
        input,
        output,
        endpoints,
        operators,
        key_groups: asked_groups,
        owned_groups,
        batch_size,
        checkpoint,
        stop,
        on_error,
        input_limits,
        io: io_options,
        keep_open,
        ready,
        mut progress,
    } = spec;
    let ends: Box<dyn io::Endpoints> = endpoints.unwrap_or_else(|| {
        Box::new(io::Named {
            input: input.clone(),
            output: output.clone(),
        })
    });
    if checkpoint.is_none()
        && let Some(why) = ends.needs_checkpoints(&io_options)
    {
        return Err(RunError::from(super::SinkError {
            output: io::shown(&output),
            source: std::io::Error::other(why),
        })
        .into());
    }
    let mut report = JobReport::default();
    let mut restore_took = Duration::ZERO;
    let rules = checkpoint
        .as_ref()
        .map_or(Default::default(), |c| super::resume::ResumeRules {
            plugin: c.accept_plugin_change,
            config: c.accept_config_change,
            dropped: c.allow_dropped_state,
            migration_timeout: c.migration_timeout,
        });
    let mut migrating = false;
    let (mut ckpt, restored) = match checkpoint {
        None => (None, None),
        Some(c) => {
            let t = Instant::now();
            let restored = restore_job(
                c.store.as_ref(),
                &c.codec,
                c.restore_from,
                c.restore_savepoint.as_deref(),
                &operators,
                (asked_groups, owned_groups.as_ref()),
                &c.renames,
            )?;
            restore_took = t.elapsed();
            migrating = restored
                .as_ref()
                .is_some_and(|(r, _)| super::migrate::needed(&operators, r));
            // Operators added, dropped, renamed or moved: the chain goes on with a full
            // checkpoint, so that no delta names an operator its base does not hold (or
            // misses one it does).
            let names: Vec<&str> = operators.iter().map(|b| b.name_or_plugin()).collect();
            // So does a migrated state, before any event (`migrate.rs`).
            let changed = restored.as_ref().is_some_and(|(r, _)| {
                let saved: Vec<&str> = r.operators.iter().map(|o| o.name.as_str()).collect();
                saved != names || !c.renames.is_empty()
            }) || migrating;
            let resume = restored.as_ref().map(|(r, _)| {
                let mut p = r.resume_point();
                p.was_latest &= !changed;
                p
            });
            let checkpointer = Checkpointer::start(c.store, c.codec, c.config, resume)?;
            let ckpt = Ckpt {
                checkpointer,
                triggers: c.triggers,
                last_at: Instant::now(),
                events_at_last: 0,
                committed: Vec::new(),
                max_pause: Duration::ZERO,
                // Operators changed: the job checkpoints them even if no event comes.
                unsaved: changed,
                failures: 0,
            };
            (Some(ckpt), restored)
        }
    };
    // The batch size: the one asked for, which must be the checkpoint's when resuming.
    let recorded = restored
        .as_ref()
        .and_then(|(r, _)| io::recorded_batch_size(&r.host.source).map(|b| (r.id, b)));
    let batch_size = match (batch_size, recorded) {
        (Some(now), Some((checkpoint, then))) if now.max(1) as u64 != then => {
            return Err(Mismatch::BatchSize {
                checkpoint,
                then,
                now: now.max(1) as u64,
            }
            .into());
        }
        (Some(now), _) => now,
        (None, Some((_, then))) => usize::try_from(then).unwrap_or(DEFAULT_BATCH_SIZE),
        (None, None) => DEFAULT_BATCH_SIZE,
    }
    .max(1);
    let groups = key_groups(asked_groups, restored.as_ref().map(|(r, _)| r))?;
    check_parallelism(&operators, groups)?;
    let (mut restored, instances) = match restored {
        Some((r, i)) => (Some(r), Some(i)),
        None => (None, None),
    };
    let mut ops = build_stages(
        operators,
        restored.as_mut().zip(instances),
        groups,
        owned_groups.as_ref(),
        rules,
    )?;
    if ckpt.is_none() {
        // No checkpoint will be taken: nothing needs to remember what changed, and a removed
        // key can leave the map at once.
        for op in ops.iter_mut().flat_map(|s| s.instances_mut()) {
            op.parts_mut().2.untrack();
        }
    }
    let pipeline = Pipeline::of_stages(ops);
    let opening = Opening {
        limits: input_limits,
        job: &name,
        batch_size: batch_size as u64,
        io: &io_options,
    };
    let (source, sink, stats) = match &restored {
        Some(r) => {
            let h = &r.host;
            // A checkpoint made without a source (`cairn state import` into an empty store):
            // the input is read from its start.
            let started = !h.source.kind.is_empty();
            if started && h.source.kind != ends.source_kind() {
                return Err(Mismatch::Source {
                    checkpoint: r.id,
                    kind: h.source.kind.clone(),
                    now: ends.source_kind(),
                }
                .into());
            }
            if let Some(at) = JsonlPosition::from_source(&h.source) {
                check_jsonl_resume(r, &at, ends.input_file().unwrap_or(&input))?;
            }
            tracing::info!(
                checkpoint = r.id,
                output_len = h.output_len,
                events_in = h.events_in,
                "resuming from checkpoint"
            );
            report.restored_from = Some(r.id);
            (
                ends.open_source(started.then_some(&h.source), opening)
                    .map_err(RunError::from)?,
                ends.open_sink(Some(h), opening).map_err(RunError::from)?,
                RunStats {
                    events_in: h.events_in,
                    events_out: h.events_out,
                    batches: h.batches,
                    watermark: h.watermark,
                },
            )
        }
        None => (
            ends.open_source(None, opening).map_err(RunError::from)?,
            ends.open_sink(None, opening).map_err(RunError::from)?,
            RunStats::default(),
        ),
    };
    let dead = match &on_error {
        ErrorPolicy::Fail => None,
        ErrorPolicy::Skip { dead_letter } => {
            let len = restored.as_ref().map(|r| r.host.dead_letter_len).unwrap_or(0);
            Some(JsonlSink::open_at(dead_letter, len).map_err(RunError::from)?)
        }
    };
    drop(restored);
    if let Some(c) = &mut ckpt {
        c.events_at_last = stats.events_in;
    }
    report.events_in_at_start = stats.events_in;
    let input_len = ends
        .input_file()
        .and_then(|f| std::fs::metadata(f).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len());
    super::metrics::started(restore_took, input_len);
    // A restored job's operators saw its watermark before the crash; they know it again.
    let mut pipeline = pipeline;
    pipeline.set_watermark(stats.watermark);
    // The input is read and parsed a batch or two ahead, on a thread of its own.
    let cut = Cut {
        size: batch_size,
        wait: io_options.batch_wait,
        skip_bad: dead.is_some(),
    };
    let source_name = source.name().to_string();
    let source = ReadAhead::spawn(source, cut).map_err(|e| {
        RunError::from(super::SourceError::Io {
            input: source_name,
            source: e,
        })
    })?;
    let mut live = Live {
        name,
        pipeline,
        source,
        sink,
        dead,
        stats,
    };

    // Restored and about to process; not ready again once the loop is left, on any path.
    struct Ready(Option<Arc<AtomicBool>>);
    impl Drop for Ready {
        fn drop(&mut self) {
            if let Some(r) = &self.0 {
                r.store(false, Ordering::Relaxed);
            }
        }
    }
    if migrating {
        // The migrated state is checkpointed (in full, with the plugin's digest and state
        // version) before any event: until then the old checkpoint stays the newest.
        let here = live.source.position().clone();
        live.finish(&mut ckpt, here, &mut report)?;
        if let Some(c) = &mut ckpt {
            c.unsaved = false;
        }
    }
    let _ready = Ready(ready);
    if let Some(r) = &_ready.0 {
        r.store(true, Ordering::Relaxed);
    }
    // Event time on an idle stream, when asked: the watermark at the last event and when it came.
    let idle = io_options.idle_event_time.filter(|_| live.source.is_unbounded());
    let mut last_event = (Instant::now(), live.stats.watermark);
    loop {
        let pos = live.source.position().clone();
        let Some(taken) = live.source.next_batch(&stop, idle) else {
            // Stopped while waiting for input: the batches taken so far are all there is.
            report.stopped = true;
            live.finish(&mut ckpt, pos, &mut report)?;
            break;
        };
        let (batch, failure, at_end, caught_up) = (taken.batch, taken.failure, taken.end, taken.caught_up);
        if !taken.bad.is_empty() {
            let n = live.dead_letter_records(&taken.bad)?;
            super::metrics::dead_lettered(n);
            report.dead_lettered += n;
        }
        if !batch.is_empty() {
            let t = Instant::now();
            match feed_batch(&mut live.pipeline, &mut *live.sink, &batch, &mut live.stats) {
                Ok(()) => {}
                Err(RunError::Operator(e)) if live.dead.is_some() => {
                    super::metrics::batch_failed();
                    tracing::warn!("{e}; retrying the batch's events one at a time (error policy: skip)");
                    let n = live.isolate(&batch)?;
                    super::metrics::dead_lettered(n);
                    report.dead_lettered += n;
                }
                Err(e) => {
                    super::metrics::batch_failed();
                    // The batch was rolled back: checkpoint the position before it, then stop.
                    live.finish(&mut ckpt, pos, &mut report)?;
                    return Err(e.into());
                }
            }
            super::metrics::batch(&live.stats, &live.pipeline, t.elapsed(), live.source.progress());
            if let Some(f) = &mut progress {
                let ops = live.pipeline.operators();
                f(&Progress {
                    input_offset: live.source.progress(),
                    input_len,
                    events_in: live.stats.events_in,
                    state_keys: ops.iter().map(Stage::state_keys).sum(),
                    state_bytes: ops.iter().map(Stage::state_bytes).sum(),
                    last_checkpoint: ckpt.as_ref().and_then(|c| c.committed.last()).map(|c| c.id),
                });
            }
        }
        if !batch.is_empty() {
            last_event = (Instant::now(), live.stats.watermark);
        } else if let (Some(d), (at, Some(w))) = (idle, last_event)
            && caught_up
            && at.elapsed() >= d
            && w != FINAL_WATERMARK
        {
            let moved = w.saturating_add(at.elapsed().as_millis() as i64);
            if live.stats.watermark.is_none_or(|now| moved > now) {
                live.advance_idle(moved, &mut ckpt, &mut report)?;
            }
        }
        if let Some(e) = failure {
            // The bad record is not consumed: a fixed input resumes exactly there.
            let here = live.source.position().clone();
            live.finish(&mut ckpt, here, &mut report)?;
            return Err(RunError::from(e).into());
        }
        if at_end && !keep_open && live.stats.watermark != Some(FINAL_WATERMARK) {
            // The input is closed: end event time, in one transaction, before the final
            // checkpoint (a run killed during it redoes it from the checkpoint before).
            let out = match live.pipeline.step(&Batch::new(), Some(FINAL_WATERMARK)) {
                Ok(out) => out,
                Err(e) => {
                    // Rolled back: checkpoint the input's end with event time still open.
                    let here = live.source.position().clone();
                    live.finish(&mut ckpt, here, &mut report)?;
                    return Err(RunError::Operator(e).into());
                }
            };
            live.stats.events_out += out.len() as u64;
            live.sink.write_batch(out).map_err(RunError::from)?;
            live.stats.watermark = Some(FINAL_WATERMARK);
            super::metrics::batch(
                &live.stats,
                &live.pipeline,
                Duration::ZERO,
                live.source.progress(),
            );
        }
        if at_end || stop.load(Ordering::Relaxed) {
            report.stopped = !at_end;
            let here = live.source.position().clone();
            live.finish(&mut ckpt, here, &mut report)?;
            break;
        }
        // A stream that has caught up: output held for a checkpoint should not wait for input.
        let idle_output = caught_up && live.sink.holds_output();
        if let Some(c) = &mut ckpt {
            let r = c.checkpointer.poll();
            if c.record(r)? {
                live.sink.commit().map_err(RunError::from)?;
            }
            let due_events = c
                .triggers
                .every_events
                .is_some_and(|n| live.stats.events_in - c.events_at_last >= n);
            let due_time = c.triggers.interval.is_some_and(|d| c.last_at.elapsed() >= d);
            if due_events || due_time || idle_output {
                // At most one checkpoint in flight: if the previous one is still being written,
                // wait for it (backpressure), so checkpoints land where the triggers say.
                let r = c.checkpointer.wait();
                if c.record(r)? {
                    live.sink.commit().map_err(RunError::from)?;
                }
                let host = live.cut(live.source.position().clone())?;
                if c.checkpointer
                    .begin(host, live.pipeline.checkpoint_parts(), live.sink.durable_file())?
                    .is_some()
                {
                    c.events_at_last = live.stats.events_in;
                    c.last_at = Instant::now();
                    c.max_pause = c.max_pause.max(c.checkpointer.last_pause());
                    if idle_output {
                        // No batch may come to poll it: see it through and publish now.
                        let r = c.checkpointer.wait();
                        if c.record(r)? {
                            live.sink.commit().map_err(RunError::from)?;
                        }
                    }
                }
            }
        }
    }
    report.stats = live.stats.clone();
    if let Some(c) = ckpt {
        report.checkpoints = c.committed;
        report.checkpoint_failures = c.failures;
        report.max_pause = c.max_pause;
    }
    // Its threads end (and record their CPU time) as the job's parts are dropped.
    drop(live);
    super::cpu::record("job");
    report.thread_cpu = super::cpu::take();
    Ok(report)
}

/// What a running job works on.
struct Live {
    name: String,
    pipeline: Pipeline,
    source: ReadAhead,
    sink: Box<dyn Sink>,
    dead: Option<JsonlSink>,
    stats: RunStats,
}

impl Live {
    /// Phase one for the outputs (the sink prepared, the dead-letter file synced), and the
    /// host's side of a checkpoint at source position `pos`.
    fn cut(&mut self, pos: SourcePosition) -> Result<HostState, RunError> {
        let (output_len, sink) = self.sink.prepare()?;
        if let Some(d) = &mut self.dead {
            d.sync()?;
        }
        Ok(HostState {
            job: self.name.clone(),
            source: pos,
            output_len,
            dead_letter_len: self.dead.as_ref().map(JsonlSink::len).unwrap_or(0),
            events_in: self.stats.events_in,
            events_out: self.stats.events_out,
            batches: self.stats.batches,
            watermark: self.stats.watermark,
            sink,
        })
    }

    /// Take a final checkpoint at `pos` (waiting for it) unless nothing changed since the last
    /// committed one, and commit the sink's output; without checkpoints, flush the output.
    fn finish(
        &mut self,
        ckpt: &mut Option<Ckpt>,
        pos: SourcePosition,
        report: &mut JobReport,
    ) -> Result<(), JobError> {
        let ops = self.pipeline.operators();
        report.expired_keys = ops.iter().map(Stage::expired_this_run).sum();
        report.state_keys = ops.iter().map(Stage::state_keys).sum();
        report.state_bytes = ops.iter().map(Stage::state_bytes).sum();
        let host = self.cut(pos)?;
        let Some(c) = ckpt else {
            self.sink.flush().map_err(RunError::from)?;
            return Ok(());
        };
        let r = c.checkpointer.wait();
        if c.record(r)? {
            self.sink.commit().map_err(RunError::from)?;
        }
        let dirty = self.pipeline.operators().iter().any(|o| o.dirty_keys() > 0);
        if self.stats.events_in == c.events_at_last && !dirty && !c.unsaved && host.sink.record.is_empty() {
            return Ok(());
        }
        let info = c.checkpointer.checkpoint_now(
            host,
            self.pipeline.checkpoint_parts(),
            self.sink.durable_file(),
        )?;
        super::metrics::checkpoint(&info);
        super::metrics::state(&self.pipeline);
        c.committed.push(info);
        self.sink.commit().map_err(RunError::from)?;
        Ok(())
    }

    /// Move event time to `watermark` on an idle input (one transaction, as a batch).
    fn advance_idle(
        &mut self,
        watermark: i64,
        ckpt: &mut Option<Ckpt>,
        report: &mut JobReport,
    ) -> Result<(), JobError> {
        match self.pipeline.step(&Batch::new(), Some(watermark)) {
            Ok(out) => {
                self.stats.events_out += out.len() as u64;
                self.sink.write_batch(out).map_err(RunError::from)?;
                self.stats.watermark = Some(watermark);
                Ok(())
            }
            Err(e) => {
                let here = self.source.position().clone();
                self.finish(ckpt, here, report)?;
                Err(RunError::Operator(e).into())
            }
        }
    }

    /// Records the source refused as events, consumed under the skip policy: each to the
    /// dead-letter file as `{"error": ..., "record": "<its text>"}`. Returns how many.
    fn dead_letter_records(&mut self, bad: &[Bad]) -> Result<u64, RunError> {
        let Some(dead) = &mut self.dead else { return Ok(0) };
        for b in bad {
            tracing::warn!(
                input = self.source.name(),
                "{}; dead-lettered (error policy: skip)",
                b.message
            );
            dead.write_bad_record(&b.raw, &b.message)?;
        }
        Ok(bad.len() as u64)
    }

    /// After a failed batch: process its events one at a time; each event that fails on its
    /// own goes to the dead-letter file. Returns how many did.
    fn isolate(&mut self, events: &Batch) -> Result<u64, RunError> {
        let Some(dead) = &mut self.dead else { return Ok(0) };
        isolate(&mut self.pipeline, &mut *self.sink, dead, events, &mut self.stats)
    }
}

/// Process `events` one at a time after their batch failed; each event that fails on its
/// own goes to the dead-letter sink with its error. Returns how many were dead-lettered.
fn isolate(
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    dead: &mut JsonlSink,
    events: &Batch,
    stats: &mut RunStats,
) -> Result<u64, RunError> {
    let mut n = 0;
    let mut one = Batch::new();
    for event in events {
        one.clear();
        // Cannot fail: the event came out of a batch.
        let _ = one.push(event.key, event.ts, event.value);
        match feed_batch(pipeline, sink, &one, stats) {
            Ok(()) => {}
            Err(RunError::Operator(e)) => {
                dead.write_dead_letter(event, &e.to_string())?;
                stats.events_in += 1;
                stats.batches += 1;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
