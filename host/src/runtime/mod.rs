//! Running operators over a stream: a JSON Lines source, a chain of operators (`Pipeline`), a
//! JSON Lines sink, and the loops that drive them in batches, advancing the watermark —
//! [`run_job`] with checkpoints and recovery (described by a [`JobSpec`]), [`run_pipeline`]
//! without. A pipeline can be described in a TOML file ([`PipelineFile`]).

mod ahead;
mod job;
mod job_spec;
mod json_check;
mod jsonl;
pub mod metrics;
mod pipeline;
mod pipeline_file;
mod run;
mod sink;
mod source;
mod writer;

pub use job::{
    CheckpointSpec, DEFAULT_BATCH_SIZE, ErrorPolicy, FINAL_WATERMARK, JobError, JobReport, JobSpec, Mismatch,
    Progress, ProgressHook, Triggers, run_job,
};
pub use jsonl::{encode_event, parse_line};
pub use pipeline::Pipeline;
pub use pipeline_file::{OperatorEntry, PipelineFile, PipelineFileError};
pub use run::{RunError, RunOptions, RunStats, run_pipeline};
pub use sink::{JsonlSink, SinkError};
pub use source::{InputLimits, JsonlSource, SourceError};
