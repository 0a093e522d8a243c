//! How a job uses memory over time: what it frees between batches stays for the next batch
//! (`cairn::alloc::keep_freed_memory`) instead of being faulted in again from the kernel.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Result, ensure};
use cairn_tests::{bench::write_input, cairn, plugin, run_args, strs};

/// Run the window operator over the first `n` events of the bench input; the run's minor page
/// faults (from the kernel's accounting of the finished child, `wait4`).
fn window_faults(dir: &Path, n: usize) -> Result<i64> {
    let input = dir.join(format!("in-{n}.jsonl"));
    write_input(&input, n, 10_000)?;
    let output = dir.join(format!("out-{n}.jsonl"));
    let args = run_args(
        &plugin("window"),
        &input,
        &output,
        &["--config", r#"{"field":"temp","size_ms":10000}"#],
    );
    let child = cairn()
        .args(strs(&args))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut status = 0;
    // SAFETY: `wait4` reaps our own child (whose `Child` is not waited on after this) and
    // fills the zeroed `rusage` it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut u);
        ensure!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
        u
    };
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "cairn run failed (status {status})"
    );
    Ok(usage.ru_minflt)
}

#[test]
fn page_faults_do_not_grow_with_the_input() -> Result<()> {
    let _guard = crate::operators::serial();
    let dir = tempfile::tempdir()?;
    let short = window_faults(dir.path(), 20_000)?;
    let long = window_faults(dir.path(), 200_000)?;
    // Before freed memory was kept, every batch faulted its buffers in again: ~8,000 more
    // faults for the 180,000 more events (44,800 in all at 1M events, 3,300 after).
    ensure!(
        long < short + 1_500,
        "{long} minor page faults over 200,000 events vs {short} over 20,000: a job's freed \
         memory is given back to the kernel and faulted in again (cairn::alloc::keep_freed_memory)"
    );
    Ok(())
}
