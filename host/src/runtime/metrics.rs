//! The job's metrics, through the `metrics` facade: the library emits them, the application
//! chooses where they go (the `cairn` binary's `--admin` server exports them to Prometheus;
//! with no recorder installed every call is a no-op). Updated per batch and per checkpoint,
//! never per event.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram};

use super::{Pipeline, RunStats};
use crate::checkpoint::{CommitInfo, Kind};

/// Describe every metric (help texts, units) to the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "cairn_events_in_total",
        "Events read from the input (over the job's life)"
    );
    describe_counter!(
        "cairn_events_out_total",
        "Events written to the output (over the job's life)"
    );
    describe_counter!("cairn_batches_total", "Batches processed (over the job's life)");
    describe_counter!(
        "cairn_batch_failures_total",
        "Batches an operator failed (rolled back)"
    );
    describe_counter!("cairn_dead_letters_total", "Events sent to the dead-letter file");
    describe_counter!(
        "cairn_broker_retries_total",
        "Calls to a broker (NATS) that failed and were retried"
    );
    describe_histogram!(
        "cairn_batch_duration_seconds",
        Unit::Seconds,
        "Time to process one batch"
    );
    describe_gauge!(
        "cairn_state_keys",
        "Live state entries of an operator (timers apart)"
    );
    describe_gauge!(
        "cairn_state_bytes",
        Unit::Bytes,
        "Bytes of an operator's state (keys and values)"
    );
    describe_gauge!(
        "cairn_state_dirty_keys",
        "Entries of an operator changed since the last checkpoint"
    );
    describe_counter!(
        "cairn_state_expired_keys_total",
        "State entries removed by state TTL in this run"
    );
    describe_gauge!("cairn_watermark_ms", "The job's watermark (event time, ms)");
    describe_counter!(
        "cairn_fuel_consumed_total",
        "Fuel an operator burnt (with --fuel only)"
    );
    describe_counter!(
        "cairn_checkpoints_total",
        "Checkpoints committed by this run, by kind"
    );
    describe_histogram!(
        "cairn_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time from a checkpoint's cut to its commit"
    );
    describe_gauge!(
        "cairn_checkpoint_bytes",
        Unit::Bytes,
        "Stored bytes of the last checkpoint"
    );
    describe_gauge!("cairn_checkpoint_last_id", "Id of the last committed checkpoint");
    describe_gauge!(
        "cairn_checkpoint_last_full",
        "1 if the last committed checkpoint is a full one"
    );
    describe_gauge!(
        "cairn_checkpoint_last_duration_seconds",
        Unit::Seconds,
        "Time from the last checkpoint's cut to its commit"
    );
    describe_gauge!(
        "cairn_checkpoint_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last committed checkpoint"
    );
    describe_counter!(
        "cairn_checkpoint_failures_total",
        "Checkpoints that failed in this run"
    );
    describe_gauge!(
        "cairn_restore_duration_seconds",
        Unit::Seconds,
        "Time the restore at start took"
    );
    describe_counter!(
        "cairn_input_bytes_read_total",
        Unit::Bytes,
        "Input bytes consumed"
    );
    describe_gauge!("cairn_input_bytes_total", Unit::Bytes, "Size of the input file");
}

/// After a batch: the job's counters (absolute: a resumed job continues its counts), the
/// operators' state, the watermark and the input position.
pub(crate) fn batch(stats: &RunStats, pipeline: &Pipeline, took: Duration, input_offset: u64) {
    counter!("cairn_events_in_total").absolute(stats.events_in);
    counter!("cairn_events_out_total").absolute(stats.events_out);
    counter!("cairn_batches_total").absolute(stats.batches);
    counter!("cairn_input_bytes_read_total").absolute(input_offset);
    histogram!("cairn_batch_duration_seconds").record(took.as_secs_f64());
    if let Some(w) = stats.watermark {
        gauge!("cairn_watermark_ms").set(w as f64);
    }
    state(pipeline);
}

/// The operators' state gauges and expiry counters.
pub(crate) fn state(pipeline: &Pipeline) {
    for stage in pipeline.operators() {
        let name = stage.name().to_string();
        for (i, op) in stage.instances().iter().enumerate() {
            let labels = [("operator", name.clone()), ("instance", i.to_string())];
            let s = op.state();
            gauge!("cairn_state_keys", &labels).set(s.len() as f64);
            gauge!("cairn_state_bytes", &labels).set(s.bytes() as f64);
            gauge!("cairn_state_dirty_keys", &labels).set(s.dirty_len() as f64);
            if let Some(f) = op.fuel_consumed() {
                counter!("cairn_fuel_consumed_total", &labels).absolute(f);
            }
        }
        counter!("cairn_state_expired_keys_total", "operator" => name).absolute(stage.expired_keys());
    }
}

/// A batch an operator failed.
pub(crate) fn batch_failed() {
    counter!("cairn_batch_failures_total").increment(1);
}

/// Events sent to the dead-letter file.
pub(crate) fn dead_lettered(n: u64) {
    counter!("cairn_dead_letters_total").increment(n);
}

/// A checkpoint committed.
pub(crate) fn checkpoint(info: &CommitInfo) {
    let kind = if info.kind == Kind::Full { "full" } else { "delta" };
    counter!("cairn_checkpoints_total", "kind" => kind).increment(1);
    histogram!("cairn_checkpoint_duration_seconds").record(info.write_time.as_secs_f64());
    gauge!("cairn_checkpoint_bytes").set(info.bytes as f64);
    gauge!("cairn_checkpoint_last_id").set(info.id as f64);
    gauge!("cairn_checkpoint_last_full").set(if info.kind == Kind::Full { 1.0 } else { 0.0 });
    gauge!("cairn_checkpoint_last_duration_seconds").set(info.write_time.as_secs_f64());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    gauge!("cairn_checkpoint_last_success_timestamp_seconds").set(now.as_secs_f64());
}

/// A checkpoint failed.
pub(crate) fn checkpoint_failed() {
    counter!("cairn_checkpoint_failures_total").increment(1);
}

/// The restore at start, and the input's size when it is a file.
pub(crate) fn started(restore: Duration, input_len: Option<u64>) {
    gauge!("cairn_restore_duration_seconds").set(restore.as_secs_f64());
    if let Some(n) = input_len {
        gauge!("cairn_input_bytes_total").set(n as f64);
    }
}

/// A call to a broker failed and is retried.
pub fn broker_retry() {
    counter!("cairn_broker_retries_total").increment(1);
}
