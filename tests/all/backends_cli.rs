//! The backends and encryption through the CLI: Redis killed mid-run, moving a job between
//! backends with `checkpoints copy`, RocksDB, and encrypted stores.

use std::fs;
use std::path::{Path, PathBuf};

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::Result;
use cairn_tests::redis::RedisServer;
use cairn_tests::{cairn, expected_counts, plugin, run_args, run_cairn, run_ok, strs, synthetic_input};

const KEY: &str = "4a6f686e2053746f6e6520736179732068656c6c6f20746f20746865207265737421";

struct Job {
    _dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
    expected: String,
}

impl Job {
    fn new(events: usize) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let text = synthetic_input(events, 300, 0);
        let input = dir.path().join("in.jsonl");
        fs::write(&input, &text)?;
        Ok(Job {
            output: dir.path().join("out.jsonl"),
            expected: expected_counts(&text)?,
            input,
            _dir: dir,
        })
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn args(&self, store: &str, extra: &[&str]) -> Vec<String> {
        let mut all = vec!["--store", store];
        all.extend_from_slice(extra);
        run_args(&plugin("counter"), &self.input, &self.output, &all)
    }

    fn run(&self, store: &str, extra: &[&str]) -> Result<Output> {
        run_cairn(&strs(&self.args(store, extra)), b"")
    }

    /// Start a run and stop it with SIGTERM after `after`; it checkpoints and exits 0.
    fn run_and_stop(&self, store: &str, after: Duration) -> Result<()> {
        let a = self.args(store, &["--batch-size", "4", "--checkpoint-every", "5000"]);
        let child = cairn()
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(after);
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let out = child.wait_with_output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let partial = fs::read_to_string(&self.output)?;
        assert!(
            !partial.is_empty() && partial.len() < self.expected.len(),
            "the stopped run should have written a proper prefix ({} of {} bytes)",
            partial.len(),
            self.expected.len()
        );
        Ok(())
    }
}

#[test]
fn redis_killed_mid_run_fails_checkpoints_clearly_and_processing_goes_on() -> Result<()> {
    let mut redis = RedisServer::start()?;
    let job = Job::new(300_000)?;
    let store = redis.url("killed");
    // Small batches keep the run going well past the outage below.
    let a = job.args(&store, &["--batch-size", "1", "--checkpoint-every", "2000"]);
    let child = cairn()
        .args(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(250));
    redis.kill()?;
    std::thread::sleep(Duration::from_millis(300));
    redis.restart()?;
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the run must survive the Redis outage: {err}"
    );
    assert!(
        err.contains("failed") && err.contains(&store) && err.contains("the next checkpoint will be full"),
        "a failed checkpoint must be reported clearly: {err}"
    );
    assert_eq!(fs::read_to_string(&job.output)?, job.expected);
    // Checkpoints after the outage were committed: the store is valid and its newest
    // checkpoint covers the whole input.
    run_ok(&["checkpoints", "verify", "--store", &store])?;
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &store, "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["host"]["events_in"], 300_000);
    // A restart recovers (nothing left to do) and leaves the output intact.
    let out = job.run(&store, &[])?;
    assert!(out.status.success());
    assert_eq!(fs::read_to_string(&job.output)?, job.expected);
    Ok(())
}

#[test]
fn a_job_stopped_on_files_resumes_on_redis_after_copy() -> Result<()> {
    let redis = RedisServer::start()?;
    let job = Job::new(300_000)?;
    let file_store = format!("file:{}", job.dir().join("ckpt").display());
    job.run_and_stop(&file_store, Duration::from_millis(300))?;
    let redis_store = redis.url("moved");
    let out = run_ok(&["checkpoints", "copy", "--from", &file_store, "--to", &redis_store])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("copied"));
    // Copying again into the now non-empty store is refused.
    let again = run_cairn(
        &["checkpoints", "copy", "--from", &file_store, "--to", &redis_store],
        b"",
    )?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds checkpoints"));
    // Resume on Redis.
    let out = job.run(&redis_store, &[])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(&job.output)?, job.expected);
    Ok(())
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_store_from_the_cli_resumes_exactly() -> Result<()> {
    let job = Job::new(300_000)?;
    let store = format!("rocksdb:{}", job.dir().join("db").display());
    job.run_and_stop(&store, Duration::from_millis(300))?;
    let list = run_ok(&["checkpoints", "list", "--store", &store])?;
    assert!(String::from_utf8_lossy(&list.stdout).contains("(latest)"));
    let out = job.run(&store, &[])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(&job.output)?, job.expected);
    Ok(())
}

#[test]
fn encrypted_store_needs_the_key_and_never_logs_it() -> Result<()> {
    let job = Job::new(20_000)?;
    let store = format!("file:{}", job.dir().join("enc").display());
    let key_args = [
        "--encryption-key-env",
        "CAIRN_TEST_KEY",
        "--checkpoint-every",
        "3000",
    ];
    let a = job.args(&store, &key_args);
    let out = cairn()
        .args(&a)
        .env("CAIRN_TEST_KEY", &KEY[..64])
        .env("CAIRN_LOG", "debug")
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains(&KEY[..64]), "the key appeared in the log");
    assert_eq!(fs::read_to_string(&job.output)?, job.expected);
    // Checkpoint files do not contain the state in clear: the key "k17" is not visible.
    for e in fs::read_dir(job.dir().join("enc"))? {
        let p = e?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ckpt-"))
        {
            let b = fs::read(&p)?;
            assert!(
                !b.windows(3).any(|w| w == b"k17"),
                "{} holds plaintext",
                p.display()
            );
        }
    }
    // Without the key: a clear refusal, for list and for run.
    let refused = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("is encrypted and no key was given")
                && err
                    .contains("hint: pass its key with --encryption-key-env <VAR> or --passphrase-env <VAR>"),
            "{err}"
        );
    };
    refused(&run_cairn(&["checkpoints", "list", "--store", &store], b"")?);
    refused(&job.run(&store, &[])?);
    // A wrong key: refused, and neither key is printed.
    let wrong = "ab".repeat(32);
    let out = cairn()
        .args([
            "checkpoints",
            "verify",
            "--store",
            &store,
            "--encryption-key-env",
            "K",
        ])
        .env("K", &wrong)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("wrong key"), "{err}");
    assert!(!err.contains(&wrong) && !err.contains(&KEY[..64]));
    // A malformed key.
    let out = cairn()
        .args([
            "checkpoints",
            "verify",
            "--store",
            &store,
            "--encryption-key-env",
            "K",
        ])
        .env("K", "xyz")
        .output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be 64 hex characters"));
    // With the key: verify passes, show decodes the state.
    let out = cairn()
        .args([
            "checkpoints",
            "show",
            "latest",
            "--store",
            &store,
            "--json",
            "--encryption-key-env",
            "K",
        ])
        .env("K", &KEY[..64])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(doc["host"]["events_in"], 20_000);
    // An unencrypted run against a store holding plain checkpoints, with a key: refused.
    let plain_store = format!("file:{}", job.dir().join("plain").display());
    assert!(job.run(&plain_store, &[])?.status.success());
    let a = job.args(&plain_store, &["--encryption-key-env", "K"]);
    let out = cairn().args(&a).env("K", &KEY[..64]).output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to mix"));
    Ok(())
}

#[test]
fn bad_store_urls_list_the_accepted_forms() -> Result<()> {
    let job = Job::new(10)?;
    let out = job.run("gs://bucket/x", &[])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("accepted forms: memory:, file:<dir>, rocksdb:<dir>, redis://"),
        "{err}"
    );
    Ok(())
}
