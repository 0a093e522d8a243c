//! `cairn job create`: read a job file, store its plugins and record on the coordinator, and
//! create the job's streams and buckets.
//!
//! A job file is a pipeline file ([`crate::runtime::PipelineFile`]) with a `name` and four
//! keys of its own:
//!
//! ```toml
//! name = "counts"
//! shards = 4                   # fixed; divides key_groups
//! store = "s3://bucket/jobs"   # every worker's checkpoints, one namespace per shard and owner
//! checkpoint_every = 10000     # events of a shard between checkpoints (and commits)
//! replicas = 3                 # JetStream replicas of the job's streams and buckets
//! key_groups = 128
//! batch_size = 1024
//!
//! [[operators]]
//! plugin = "../dist/plugins/counter.wasm"
//! ```

use std::path::Path;

use async_nats::jetstream::{self, stream};
use sha2::{Digest, Sha256};

use super::kv;
use super::record::{
    ClusterError, JOBS_BUCKET, JobRecord, PLUGINS, check_name, connected, coordinator, error_chain, nats_err,
};
use crate::engine::ComponentCache;
use crate::runtime::{DEFAULT_BATCH_SIZE, IoOptions, PipelineFile};

/// Events between a shard's checkpoints when the job file does not say.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;

/// Create the job `job_file` describes on the coordinator at `url`; a line saying what was done.
/// Creating a job that exists with the same definition changes nothing; with another, fails.
pub fn create_job(
    url: &str,
    job_file: &Path,
    io: &IoOptions,
    cache: Option<ComponentCache>,
) -> Result<String, ClusterError> {
    let (record, plugins) = read_job_file(job_file, cache)?;
    let u = coordinator(url)?;
    let (rt, _client, js) = connected(&u, io)?;
    let err = |e: String| nats_err(&u, e);
    rt.block_on(async {
        let jobs = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: JOBS_BUCKET.into(),
                history: 1,
                num_replicas: record.replicas,
                ..Default::default()
            })
            .await;
        let jobs = match jobs {
            Ok(b) => b,
            Err(_) => js
                .get_key_value(JOBS_BUCKET)
                .await
                .map_err(|e| err(format!("opening bucket {JOBS_BUCKET}: {e}")))?,
        };
        if let Some(old) = jobs.get(&record.name).await.map_err(|e| err(e.to_string()))? {
            let old: Option<JobRecord> = serde_json::from_slice(&old).ok();
            if old.as_ref() == Some(&record) {
                return Ok(format!("job {} exists, unchanged", record.name));
            }
            return Err(ClusterError::Other(format!(
                "job {:?} exists on {} with another definition; a job's shards, key groups, store and \
                 pipeline are fixed when it is created: give the new job another name",
                record.name,
                u.shown.trim_end_matches("/_")
            )));
        }
        let names = record.names();
        for (name, subjects) in [
            (names.input_stream(), names.input_subjects()),
            (names.output_stream(), names.output_subjects()),
        ] {
            let config = stream::Config {
                name: name.clone(),
                subjects,
                allow_atomic_publish: true,
                num_replicas: record.replicas,
                ..Default::default()
            };
            js.get_or_create_stream(config)
                .await
                .map_err(|e| err(format!("creating stream {name}: {e}")))?;
        }
        for bucket in [names.leases_bucket(), names.members_bucket()] {
            kv::bucket(&js, &bucket, record.replicas).await.map_err(err)?;
        }
        let store = match js.get_object_store(PLUGINS).await {
            Ok(s) => s,
            Err(_) => js
                .create_object_store(jetstream::object_store::Config {
                    bucket: PLUGINS.into(),
                    num_replicas: record.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| err(format!("creating object store {PLUGINS}: {e}")))?,
        };
        for (digest, bytes) in &plugins {
            if store.info(digest).await.is_err() {
                store
                    .put(digest.as_str(), &mut bytes.as_slice())
                    .await
                    .map_err(|e| err(format!("storing plugin {digest}: {e}")))?;
            }
        }
        let body = serde_json::to_vec(&record).map_err(|e| ClusterError::Other(e.to_string()))?;
        jobs.create(&record.name, body.into())
            .await
            .map_err(|e| err(format!("recording job {}: {e}", record.name)))?;
        Ok(format!(
            "job {}: {} shards over {} key groups, store {}, input subjects cairn.{}.in.<shard>.<key group>, \
             output stream {}",
            record.name,
            record.shards,
            record.key_groups,
            record.store,
            record.name,
            names.output_stream()
        ))
    })
}

/// Plugins' bytes by their SHA-256 (hex).
type Plugins = Vec<(String, Vec<u8>)>;

/// The job a job file describes, and its plugins' bytes by digest.
fn read_job_file(path: &Path, cache: Option<ComponentCache>) -> Result<(JobRecord, Plugins), ClusterError> {
    let shown = path.display().to_string();
    let bad = |message: String| ClusterError::JobFile {
        path: shown.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let int = |table: &mut toml::Table, key: &str| -> Result<Option<u64>, ClusterError> {
        match table.remove(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if n >= 1 => Ok(Some(n as u64)),
            Some(_) => Err(bad(format!("`{key}` must be a whole number of at least 1"))),
        }
    };
    let shards = int(&mut table, "shards")?.ok_or_else(|| bad("it needs `shards = <number>`".into()))?;
    let checkpoint_every = int(&mut table, "checkpoint_every")?.unwrap_or(DEFAULT_CHECKPOINT_EVERY);
    let replicas = int(&mut table, "replicas")?.unwrap_or(1);
    if replicas > 5 {
        return Err(bad("`replicas` is 1 to 5 (JetStream's limit)".into()));
    }
    let store = match table.remove("store") {
        Some(toml::Value::String(s)) => s,
        _ => {
            return Err(bad(
                "it needs `store = \"<checkpoint store URL>\"` that every worker reaches".into(),
            ));
        }
    };
    crate::store::namespaced(&store, "shard-0").map_err(|e| bad(format!("`store`: {e}")))?;
    if store.split('?').next().is_some_and(|s| s.contains('@')) {
        return Err(bad(
            "`store` must not hold credentials (the job record is readable by every worker); give them to \
             each worker in its environment"
                .into(),
        ));
    }
    let name = match table.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => return Err(bad("it needs `name = \"<job name>\"`".into())),
    };
    check_name(&name).map_err(bad)?;
    let key_groups = match table.get("key_groups") {
        Some(toml::Value::Integer(n)) => *n as u64,
        _ => u64::from(cairn_codec::scoped::DEFAULT_KEY_GROUPS),
    };
    if shards > key_groups || key_groups % shards != 0 {
        return Err(bad(format!(
            "{shards} shards cannot split {key_groups} key groups evenly: `shards` must divide `key_groups`"
        )));
    }
    table.insert("key_groups".into(), toml::Value::Integer(key_groups as i64));
    let batch_size = match table.get("batch_size") {
        Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
        _ => DEFAULT_BATCH_SIZE,
    };
    table.insert("batch_size".into(), toml::Value::Integer(batch_size as i64));
    let dir = path.parent().unwrap_or(Path::new("."));
    // Each plugin by its digest, each operator named as it would be with its own file.
    let mut plugins = Vec::new();
    if let Some(toml::Value::Array(ops)) = table.get_mut("operators") {
        for op in ops.iter_mut() {
            let Some(op) = op.as_table_mut() else { continue };
            let Some(toml::Value::String(file)) = op.get("plugin").cloned() else {
                continue;
            };
            let file = dir.join(file);
            let bytes = std::fs::read(&file).map_err(|source| ClusterError::Io {
                path: file.display().to_string(),
                source,
            })?;
            let digest = hex::encode(Sha256::digest(&bytes));
            if !op.contains_key("name") {
                let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
                op.insert(
                    "name".into(),
                    toml::Value::String(stem.unwrap_or_else(|| "operator".into())),
                );
            }
            op.insert("plugin".into(), toml::Value::String(format!("{digest}.wasm")));
            plugins.push((digest, bytes));
        }
    }
    let pipeline = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
    // Check it as a worker will read it: the pipeline, and every plugin loaded.
    let tmp = tempfile::tempdir().map_err(|source| ClusterError::Io {
        path: "a temporary directory".into(),
        source,
    })?;
    for (digest, bytes) in &plugins {
        let at = tmp.path().join(format!("{digest}.wasm"));
        std::fs::write(&at, bytes).map_err(|source| ClusterError::Io {
            path: at.display().to_string(),
            source,
        })?;
    }
    let spec = PipelineFile::parse(&pipeline, tmp.path(), &format!("job file {shown}"))
        .map_err(|e| bad(format!("{e}")))?;
    let engine = spec.engine().map_err(|e| bad(e.to_string()))?.with_cache(cache);
    spec.builders(&engine).map_err(|e| bad(error_chain(&e)))?;
    let digests = plugins.iter().map(|(d, _)| d.clone()).collect();
    Ok((
        JobRecord {
            name,
            shards: shards as u32,
            key_groups: key_groups as u32,
            batch_size,
            store,
            checkpoint_every,
            replicas: replicas as usize,
            pipeline,
            plugins: digests,
        },
        plugins,
    ))
}
