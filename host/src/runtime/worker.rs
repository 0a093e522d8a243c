//! [`Worker`]: a thread that runs one borrowed job at a time for the thread that gives it,
//! which waits for it before the borrow ends (a scoped thread that is started once, not per
//! batch). It blocks while idle (no spinning: on a machine with few cores, the input and output
//! threads need the time), and a job's panic is carried back to the waiting thread.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;
type Panic = Box<dyn std::any::Any + Send + 'static>;

/// A thread that runs jobs borrowed from the thread that starts them.
#[derive(Debug)]
pub(crate) struct Worker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<(), Panic>>,
    thread: Option<JoinHandle<()>>,
}

/// A job running on a [`Worker`]; [`Running::wait`] (or dropping it) waits for it to end.
#[must_use = "the job borrows from the caller: wait for it"]
pub(crate) struct Running<'w> {
    worker: &'w Worker,
    waited: bool,
}

impl Worker {
    /// Start the thread (named `name`).
    pub(crate) fn new(name: &str) -> Self {
        let (jobs, rx) = channel::<Job>();
        let (tx, done) = channel();
        let shown = name.strip_prefix("cairn-").unwrap_or(name).to_string();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for job in rx {
                    if tx.send(catch_unwind(AssertUnwindSafe(job))).is_err() {
                        break;
                    }
                }
                super::cpu::record(&shown);
            })
            .ok();
        Self {
            jobs: Some(jobs),
            done,
            thread,
        }
    }

    /// Run `job` on the worker; it may borrow from the caller until the returned
    /// [`Running`] is waited for or dropped. If the thread could not be started, `job` runs
    /// here and now.
    pub(crate) fn start<'a, F: FnOnce() + Send + 'a>(&'a self, job: F) -> Running<'a> {
        let boxed: Box<dyn FnOnce() + Send + 'a> = Box::new(job);
        // SAFETY: the job's borrows live for 'a; `Running<'a>` waits for the job to end (in
        // `wait` or on drop) before 'a can end, so the job never runs after them.
        let boxed: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(boxed) };
        let sent = match (&self.thread, &self.jobs) {
            (Some(_), Some(jobs)) => jobs.send(boxed).map_err(|e| e.0),
            _ => Err(boxed),
        };
        if let Err(job) = sent {
            job();
            return Running {
                worker: self,
                waited: true,
            };
        }
        Running {
            worker: self,
            waited: false,
        }
    }
}

impl Running<'_> {
    /// Wait for the job; a panic in it goes on here.
    pub(crate) fn wait(mut self) {
        self.waited = true;
        if let Ok(Err(panic)) = self.worker.done.recv() {
            resume_unwind(panic);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.waited {
            // Unwinding already (or never waited): wait, and let the first panic stand.
            let _ = self.worker.done.recv();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_borrow_from_the_caller_and_panics_come_back() {
        let w = Worker::new("test-worker");
        let mut total = 0u64;
        for i in 0..100 {
            let t = &mut total;
            w.start(move || *t += i).wait();
        }
        assert_eq!(total, 4950);
        let caught = catch_unwind(AssertUnwindSafe(|| w.start(|| panic!("boom")).wait()));
        assert!(caught.is_err());
        // The worker goes on after a panic.
        let mut x = 0;
        w.start(|| x = 7).wait();
        assert_eq!(x, 7);
    }
}
