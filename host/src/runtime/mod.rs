//! Running operators over a stream: a [`Source`] (a JSON Lines file, stdin, a NATS JetStream
//! stream), a chain of operators (`Pipeline`), a [`Sink`], and the loops that drive them in batches, advancing the watermark —
//! [`run_job`] with checkpoints and recovery (described by a [`JobSpec`]), [`run_pipeline`]
//! without. A pipeline can be described in a TOML file ([`PipelineFile`]).

mod ahead;
mod cpu;
pub mod io;
mod job;
mod job_spec;
mod json_check;
mod jsonl;
pub mod metrics;
mod migrate;
#[cfg(feature = "nats")]
pub mod nats;
mod pipeline;
mod pipeline_file;
mod resume;
mod run;
mod sink;
mod source;
mod stage;
mod worker;
mod writer;

pub use io::{Endpoints, IoOptions, Named, Sink, Source, open_sink, open_source};
pub use job::{
    CheckpointSpec, DEFAULT_BATCH_SIZE, ErrorPolicy, FINAL_WATERMARK, JobError, JobReport, JobSpec, Mismatch,
    ParallelismError, Progress, ProgressHook, Triggers, run_job,
};
pub use jsonl::{encode_event, parse_line};
pub use migrate::{DEFAULT_MIGRATION_TIMEOUT, MigrationError};
pub use pipeline::Pipeline;
pub use pipeline_file::{OperatorEntry, PipelineFile, PipelineFileError};
pub use run::{RunError, RunOptions, RunStats, run_pipeline};
pub use sink::{JsonlSink, SinkError};
pub use source::{InputLimits, JsonlSource, SourceError};
pub use stage::{Stage, instance_limits};
