//! [`Stage`]: one operator of a pipeline as N instances, each its own plugin instance (store,
//! sandbox, state) owning the contiguous key groups `[⌊i·G/N⌋, ⌊(i+1)·G/N⌋)` (Flink's
//! assignment, `state::KeyGroups`).
//!
//! A batch is split by key group (each key's events reach its instance in input order), the
//! instances run at once (the first on the job's thread, each other one on a thread of its own),
//! and their outputs are joined **instance by instance**: instance 0's outputs of the batch's
//! events (in the order it made them), then instance 1's, and so on; then the outputs of timers
//! and the watermark, instance by instance likewise. So for a given input, batch size and N the output is always the
//! same, and each key's outputs keep their order whatever N is. At N = 1 a batch goes through
//! untouched. The stage is one transaction with the rest of the pipeline: its instances begin,
//! commit and roll back together.

use super::worker::Worker;
use crate::checkpoint::OperatorPart;
use crate::{Batch, CallError, Limits, OperatorInstance};

/// The limits of instance `index` of `n`: the operator's state quotas (keys, bytes, timers)
/// shared out (their sum is the operator's, so a checkpoint taken at any parallelism fits them
/// at any other); a value's size, memory, time and fuel are each instance's own.
pub fn instance_limits(limits: &Limits, index: u32, n: u32) -> Limits {
    let share = |total: u64| {
        let (n, i) = (u64::from(n.max(1)), u64::from(index));
        total / n + u64::from(i < total % n)
    };
    let mut l = limits.clone();
    l.max_keys = share(limits.max_keys);
    l.max_state_bytes = share(limits.max_state_bytes);
    l.max_timers = share(limits.max_timers);
    l
}

/// One operator's instances.
#[derive(Debug)]
pub struct Stage {
    instances: Vec<OperatorInstance>,
    /// The job's key groups.
    groups: u32,
    /// The instance that owns each key group (empty at N = 1).
    owner: Vec<u16>,
    /// Entries expired by state TTL before this run (restored), added to the instances'.
    expired_before: u64,
    /// Sub-batches, one per instance (reused).
    parts: Vec<Batch>,
    /// A thread for each instance but the first (which runs on the job's thread).
    workers: Vec<Worker>,
}

impl Stage {
    /// A stage of `instances`, instance `i` owning the groups `KeyGroups::for_instance(groups,
    /// i, N)` (as each was built with).
    pub fn new(instances: Vec<OperatorInstance>, groups: u32, expired_before: u64) -> Self {
        let n = instances.len() as u32;
        let owner = if n > 1 {
            let mut owner = vec![0u16; groups as usize];
            for (i, inst) in instances.iter().enumerate() {
                for g in inst.key_groups().owned() {
                    owner[g as usize] = i as u16;
                }
            }
            owner
        } else {
            Vec::new()
        };
        let parts = (0..instances.len()).map(|_| Batch::new()).collect();
        let name = instances.first().map_or("", |i| i.name()).to_string();
        let workers = (1..instances.len())
            .map(|i| Worker::new(&format!("cairn-{name}-{i}")))
            .collect();
        Self {
            instances,
            groups,
            owner,
            expired_before,
            parts,
            workers,
        }
    }

    /// A stage of one instance that owns every group.
    pub fn single(instance: OperatorInstance) -> Self {
        let groups = instance.key_groups().count();
        Self::new(vec![instance], groups, 0)
    }

    /// Its instances, in order of their key groups.
    pub fn instances(&self) -> &[OperatorInstance] {
        &self.instances
    }

    /// Its instances, mutable (a job that takes no checkpoints stops tracking changes).
    pub fn instances_mut(&mut self) -> &mut [OperatorInstance] {
        &mut self.instances
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        self.instances[0].name()
    }

    /// Entries expired by state TTL over the operator's life (restored, plus every instance's).
    pub fn expired_keys(&self) -> u64 {
        self.expired_before + self.instances.iter().map(|i| i.expired_keys()).sum::<u64>()
    }

    /// Entries expired by state TTL in this run, all instances.
    pub fn expired_this_run(&self) -> u64 {
        self.instances.iter().map(|i| i.expired_keys()).sum()
    }

    /// Keys in state, all instances.
    pub fn state_keys(&self) -> u64 {
        self.instances.iter().map(|i| i.state().len() as u64).sum()
    }

    /// Bytes in state, all instances.
    pub fn state_bytes(&self) -> u64 {
        self.instances.iter().map(|i| i.state().bytes()).sum()
    }

    /// Keys changed since the last checkpoint, all instances.
    pub fn dirty_keys(&self) -> u64 {
        self.instances.iter().map(|i| i.state().dirty_len() as u64).sum()
    }

    /// Set every instance's watermark without calling it (a restored job).
    pub fn set_watermark(&mut self, watermark: Option<i64>) {
        for i in &mut self.instances {
            i.set_watermark(watermark);
        }
    }

    /// Open a transaction in every instance.
    pub fn begin_batch(&mut self) {
        for i in &mut self.instances {
            i.begin_batch();
        }
    }

    /// Keep every instance's writes since [`Stage::begin_batch`].
    pub fn commit_batch(&mut self) {
        for i in &mut self.instances {
            i.commit_batch();
        }
    }

    /// Undo every instance's writes since [`Stage::begin_batch`].
    pub fn rollback_batch(&mut self) {
        for i in &mut self.instances {
            i.rollback_batch();
        }
    }

    /// Split `batch` by the instance that owns each event's key (into `self.parts`).
    fn route(&mut self, batch: &Batch) {
        for p in &mut self.parts {
            p.clear();
        }
        for e in batch.iter() {
            let g = cairn_codec::scoped::key_group(e.key, self.groups);
            let part = &mut self.parts[self.owner[g as usize] as usize];
            // A part is never larger than the batch it comes from.
            part.push(e.key, e.ts, e.value).expect("a part of a batch fits");
        }
    }

    /// Process `batch`: each event by the instance that owns its key.
    pub fn process_batch(&mut self, batch: &Batch) -> Result<Batch, CallError> {
        if self.instances.len() == 1 {
            return self.instances[0].process_batch(batch);
        }
        self.route(batch);
        let parts = &self.parts;
        let outs = on_each(&mut self.instances, &self.workers, |i, inst| {
            process(inst, &parts[i])
        })?;
        Ok(joined(outs.iter()))
    }

    /// Advance every instance's event time to `watermark` (timers fire).
    pub fn on_watermark_batch(&mut self, watermark: i64) -> Result<Batch, CallError> {
        if self.instances.len() == 1 {
            return self.instances[0].on_watermark_batch(watermark);
        }
        let outs = on_each(&mut self.instances, &self.workers, |_, inst| {
            inst.on_watermark_batch(watermark)
        })?;
        Ok(joined(outs.iter()))
    }

    /// [`Stage::process_batch`], then (if given) [`Stage::on_watermark_batch`], in one
    /// hand-over to each instance's thread; the outputs of the events come first (instance by
    /// instance), then those of timers and the watermark (instance by instance), as the two
    /// calls one after the other would give them.
    pub fn step(&mut self, batch: &Batch, watermark: Option<i64>) -> Result<Batch, CallError> {
        if self.instances.len() == 1 {
            let mut out = process(&mut self.instances[0], batch)?;
            if let Some(w) = watermark {
                out.append(&self.instances[0].on_watermark_batch(w)?);
            }
            return Ok(out);
        }
        self.route(batch);
        let parts = &self.parts;
        let outs = on_each(&mut self.instances, &self.workers, |i, inst| {
            let out = process(inst, &parts[i])?;
            let timed = match watermark {
                Some(w) => inst.on_watermark_batch(w)?,
                None => Batch::new(),
            };
            Ok((out, timed))
        })?;
        let mut out = joined(outs.iter().map(|(o, _)| o));
        out.append(&joined(outs.iter().map(|(_, t)| t)));
        Ok(out)
    }

    /// The operator as a checkpoint cut sees it: every instance's state.
    pub fn checkpoint_part(&mut self) -> OperatorPart<'_> {
        let expired = self.expired_keys();
        let key_groups = self.groups;
        let plugin_digest = self.instances[0].plugin().digest_hex();
        let state_version = self.instances[0].plugin().state_version();
        let mut states = Vec::with_capacity(self.instances.len());
        let mut name = "";
        let mut config = "";
        for inst in &mut self.instances {
            let (n, c, state) = inst.parts_mut();
            name = n;
            config = c;
            states.push(state);
        }
        OperatorPart {
            name,
            plugin_digest,
            config,
            key_groups,
            expired,
            state_version,
            states,
        }
    }
}

fn process(inst: &mut OperatorInstance, part: &Batch) -> Result<Batch, CallError> {
    if part.is_empty() {
        Ok(Batch::new())
    } else {
        inst.process_batch(part)
    }
}

fn joined<'a>(outs: impl Iterator<Item = &'a Batch>) -> Batch {
    let mut out = Batch::new();
    for o in outs {
        out.append(o);
    }
    out
}

/// Run `call` on every instance at once — the first on this thread, the others on the stage's
/// workers — and give the results in instance order; the first instance's error (in that
/// order) if any failed.
fn on_each<T: Send>(
    instances: &mut [OperatorInstance],
    workers: &[Worker],
    call: impl Fn(usize, &mut OperatorInstance) -> Result<T, CallError> + Sync,
) -> Result<Vec<T>, CallError> {
    let call = &call;
    let (first, rest) = instances.split_first_mut().expect("a stage has an instance");
    let mut results: Vec<Option<Result<T, CallError>>> = (0..rest.len()).map(|_| None).collect();
    let result0 = {
        let mut running = Vec::with_capacity(rest.len());
        for ((i, inst), slot) in rest.iter_mut().enumerate().zip(results.iter_mut()) {
            running.push(workers[i].start(move || *slot = Some(call(i + 1, inst))));
        }
        let r = call(0, first);
        for job in running {
            job.wait();
        }
        r
    };
    let mut all = Vec::with_capacity(results.len() + 1);
    all.push(result0?);
    for r in results {
        all.push(r.expect("every instance was called")?);
    }
    Ok(all)
}
