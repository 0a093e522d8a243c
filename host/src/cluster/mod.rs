//! Sharded jobs on NATS JetStream (cargo feature `nats`): one job across worker processes on
//! many machines, JetStream the one strongly consistent component (docs/cluster.md).
//!
//! * A job ([`JobRecord`], kept in the `cairn_jobs` key-value bucket) has S shards; shard `i`
//!   owns the key groups `[i·G/S, (i+1)·G/S)`. Its input is one subject per key group
//!   ([`Names::input_subject`]), written by [`ingest`] or any producer that hashes keys the
//!   same way; its output and commit records go to the job's output stream.
//! * A shard runs as an ordinary job ([`crate::runtime::run_job`]) over its groups' subjects,
//!   batches cut by count only; every checkpoint is committed by one atomic batch (its outputs
//!   and a commit record naming the checkpoint) fenced by the commit subject's last sequence
//!   ([`crate::runtime::nats::NatsSink::open_shard`]). The commit record, not the store's
//!   pointer, says which checkpoint is current; each owner writes its checkpoints under its own
//!   epoch ([`ShardStore`]), so a zombie's late writes can never become current.
//! * Workers ([`worker`]) heartbeat in a members bucket and hold shards under leases (per-key
//!   TTL, renewed by revision compare-and-swap) in a leases bucket; who should own a shard is
//!   decided by rendezvous hashing over the live members ([`assign`]). Safety rests on the
//!   fence alone; the leases only keep two owners from wasting work.

pub mod assign;
mod create;
mod ingest;
mod kv;
mod record;
mod shard;
mod shard_store;
mod status;
pub mod worker;

pub use create::create_job;
pub use ingest::{IngestReport, ingest};
pub use record::{ClusterError, JobRecord, Names, job_record};
pub use shard_store::ShardStore;
pub use status::{ShardStatus, export, status};
pub use worker::{WorkerOptions, run_worker};
