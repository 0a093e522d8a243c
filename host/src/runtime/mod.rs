//! The pipeline: a JSON Lines source, a chain of operators, a JSON Lines sink, and the loop
//! that drives them in batches, advancing the watermark.

mod ahead;
mod job;
mod job_spec;
mod json_check;
mod jsonl;
pub mod metrics;
mod pipeline;
mod run;
mod sink;
mod source;
mod spec;
mod writer;

pub use job::{
    CheckpointSpec, DEFAULT_BATCH_SIZE, ErrorPolicy, FINAL_WATERMARK, JobError, JobReport, JobSpec, Mismatch,
    Progress, ProgressHook, Triggers, run_job,
};
pub use jsonl::{encode_event, parse_line};
pub use pipeline::Pipeline;
pub use run::{RunError, RunOptions, RunStats, run};
pub use sink::{JsonlSink, SinkError};
pub use source::{InputLimits, JsonlSource, SourceError};
pub use spec::{OperatorSpec, PipelineSpec, SpecError};
