//! CPU time per thread of a job: each thread a job starts (input, output, an operator's extra
//! instances) records its CPU time when it ends, the job's own thread at the job's end, and
//! the job's report lists them ([`super::JobReport::thread_cpu`]), so that a bench can say which
//! thread limits a run. Per process: jobs that run at once in one process share the list.

use std::sync::Mutex;
use std::time::Duration;

static ENDED: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// The calling thread's CPU time so far (user and system); zero where it cannot be read.
pub(crate) fn this_thread() -> Duration {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct, and the
        // pointer is valid for the call.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } == 0 {
            let t =
                |v: libc::timeval| Duration::new(v.tv_sec.max(0) as u64, (v.tv_usec.max(0) as u32) * 1000);
            return t(u.ru_utime) + t(u.ru_stime);
        }
    }
    Duration::ZERO
}

/// Record the calling thread's CPU time under `name` (as it ends).
pub(crate) fn record(name: &str) {
    let cpu = this_thread();
    if let Ok(mut e) = ENDED.lock() {
        e.push((name.to_string(), cpu));
    }
}

/// The threads recorded since the last call, summed by name, in the order first recorded.
pub(crate) fn take() -> Vec<(String, Duration)> {
    let ended = ENDED
        .lock()
        .map(|mut e| std::mem::take(&mut *e))
        .unwrap_or_default();
    let mut out: Vec<(String, Duration)> = Vec::new();
    for (name, cpu) in ended {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += cpu,
            None => out.push((name, cpu)),
        }
    }
    out
}
