//! Damaged checkpoints on disk: each kind of damage is detected with a message naming the
//! checkpoint and the problem, `verify` fails, and a run falls back to the newest valid
//! checkpoint and still produces the exact output.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cairn_tests::{expected_counts, plugin, run_args, run_cairn, run_ok, strs, synthetic_input};

struct Fixture {
    _dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
    store_dir: PathBuf,
    expected: String,
}

impl Fixture {
    /// 3000 events, a checkpoint every 500, a full every 4th: ids 1 (full) 2 3 4 (deltas)
    /// 5 (full) 6 (delta), each covering 500 more events.
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let text = synthetic_input(3000, 50, 0);
        let input = dir.path().join("in.jsonl");
        fs::write(&input, &text)?;
        let f = Fixture {
            input,
            output: dir.path().join("out.jsonl"),
            store_dir: dir.path().join("store"),
            expected: expected_counts(&text)?,
            _dir: dir,
        };
        let out = f.run()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ids: Vec<u64> = (1..=6).collect();
        assert_eq!(f.ids()?, ids);
        Ok(f)
    }

    fn store(&self) -> String {
        format!("file:{}", self.store_dir.display())
    }

    fn path(&self, id: u64) -> PathBuf {
        self.store_dir.join(format!("ckpt-{id:020}.cairn"))
    }

    fn ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = fs::read_dir(&self.store_dir)?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("ckpt-")?.strip_suffix(".cairn")?.parse().ok()
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn run(&self) -> Result<std::process::Output> {
        let store = self.store();
        let extra = [
            "--store",
            store.as_str(),
            "--checkpoint-every",
            "500",
            "--full-every",
            "3",
            "--max-retained",
            "20",
            "--batch-size",
            "100",
        ];
        run_cairn(
            &strs(&run_args(&plugin("counter"), &self.input, &self.output, &extra)),
            b"",
        )
    }

    /// `verify` must fail and report `needle` for checkpoint `id`.
    fn assert_verify_reports(&self, id: u64, needle: &str) -> Result<()> {
        let out = run_cairn(&["checkpoints", "verify", "--store", &self.store()], b"")?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "verify should fail:\n{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("checkpoint {id}:")))
            .unwrap_or_default();
        assert!(
            line.contains("DAMAGED") && line.contains(needle),
            "expected {needle:?} for {id} in:\n{text}"
        );
        Ok(())
    }

    /// A re-run restores the newest valid checkpoint `expect_from`, says so, and completes
    /// the output exactly.
    fn assert_run_falls_back_to(&self, expect_from: u64) -> Result<()> {
        // Pretend the job was killed after checkpoint 6: damage happened at rest.
        let out = self.run()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("restored checkpoint {expect_from} ")),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&self.output)?, self.expected);
        Ok(())
    }
}

fn flip(path: &Path, at: usize) -> Result<()> {
    let mut b = fs::read(path)?;
    b[at] ^= 0x40;
    fs::write(path, b)?;
    Ok(())
}

#[test]
fn truncated_latest_falls_back_to_its_parent() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.path(6);
    let len = fs::metadata(&p)?.len();
    fs::OpenOptions::new().write(true).open(&p)?.set_len(len / 2)?;
    f.assert_verify_reports(6, "truncated")?;
    let err = cairn::checkpoint::restore::load_chain(
        &cairn::store::FileStore::open(&f.store_dir)?,
        &cairn::checkpoint::Codec::plain(),
        6,
    )
    .expect_err("must not load")
    .to_string();
    assert!(err.contains("checkpoint 6") && err.contains(&f.store()), "{err}");
    f.assert_run_falls_back_to(5)
}

#[test]
fn flipped_payload_byte_is_a_checksum_mismatch() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.path(6);
    let len = fs::metadata(&p)?.len() as usize;
    flip(&p, 80 + (len - 84) / 2)?;
    f.assert_verify_reports(6, "payload checksum mismatch")?;
    f.assert_run_falls_back_to(5)
}

#[test]
fn flipped_header_byte_is_detected() -> Result<()> {
    let f = Fixture::new()?;
    flip(&f.path(6), 20)?;
    f.assert_verify_reports(6, "header checksum mismatch")?;
    f.assert_run_falls_back_to(5)
}

#[test]
fn newer_format_version_is_refused_with_upgrade_advice() -> Result<()> {
    let f = Fixture::new()?;
    let p = f.path(6);
    let mut b = fs::read(&p)?;
    let now = cairn::checkpoint::format::VERSION;
    b[8..10].copy_from_slice(&(now + 1).to_le_bytes());
    let crc = crc32(&b[0..76]);
    b[76..80].copy_from_slice(&crc.to_le_bytes());
    fs::write(&p, b)?;
    f.assert_verify_reports(
        6,
        &format!(
            "format version {} is newer than this Cairn understands ({now}); upgrade cairn",
            now + 1
        ),
    )?;
    f.assert_run_falls_back_to(5)
}

#[test]
fn missing_base_is_named_and_older_chain_is_used() -> Result<()> {
    let f = Fixture::new()?;
    fs::remove_file(f.path(5))?;
    f.assert_verify_reports(6, "needs checkpoint 5, which is missing")?;
    f.assert_run_falls_back_to(4)
}

#[test]
fn damaged_delta_in_the_middle_breaks_only_its_descendants() -> Result<()> {
    let f = Fixture::new()?;
    flip(&f.path(3), 100)?;
    f.assert_verify_reports(3, "payload checksum mismatch")?;
    f.assert_verify_reports(4, "needs checkpoint 3, which is damaged")?;
    // 6's chain (5, 6) is intact: the newest is still restorable.
    let out = f.run()?;
    assert!(out.status.success());
    assert_eq!(fs::read_to_string(&f.output)?, f.expected);
    Ok(())
}

#[test]
fn not_a_checkpoint_and_nothing_valid_is_a_clear_error() -> Result<()> {
    let f = Fixture::new()?;
    for id in f.ids()? {
        fs::write(f.path(id), b"hello, I am not a checkpoint")?;
    }
    f.assert_verify_reports(1, "not a Cairn checkpoint")?;
    let before = fs::read(&f.output)?;
    let out = f.run()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no checkpoint in") && err.contains("can be restored"),
        "{err}"
    );
    // Nothing was overwritten.
    assert_eq!(fs::read(&f.output)?, before);
    Ok(())
}

#[test]
fn point_in_time_restore_resumes_from_the_chosen_checkpoint() -> Result<()> {
    let f = Fixture::new()?;
    let show = run_ok(&["checkpoints", "show", "3", "--store", &f.store(), "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(doc["chain"], serde_json::json!([1, 2, 3]));
    assert_eq!(doc["host"]["events_in"], 1500);
    let store = f.store();
    let extra = [
        "--store",
        store.as_str(),
        "--restore-from",
        "3",
        "--checkpoint-every",
        "700",
    ];
    let out = run_ok(&strs(&run_args(&plugin("counter"), &f.input, &f.output, &extra)))?;
    assert!(out.status.success());
    assert_eq!(fs::read_to_string(&f.output)?, f.expected);
    // Restoring an older checkpoint starts a new chain with a full checkpoint (7), so the
    // newer 4..6 are never mixed in.
    let show = run_ok(&["checkpoints", "show", "latest", "--store", &f.store(), "--json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    let chain: Vec<u64> = doc["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(
        chain.first() == Some(&7) && chain.windows(2).all(|w| w[0] < w[1]),
        "{chain:?}"
    );
    Ok(())
}

#[test]
fn changed_plugin_is_refused_unless_accepted() -> Result<()> {
    let f = Fixture::new()?;
    let counter = plugin("counter");
    // A different component with the same behaviour: append a custom section.
    let mut bytes = fs::read(&counter)?;
    bytes.extend_from_slice(&[0, 6, 5, b'x', b'-', b'c', b'a', b'i']);
    let changed = f
        .store_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("counter.wasm");
    fs::write(&changed, bytes)?;
    let store = f.store();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut all = vec!["--store", store.as_str()];
        all.extend_from_slice(extra);
        run_args(&changed, &f.input, &f.output, &all)
    };
    let out = run_cairn(&strs(&args(&[])), b"")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the plugin changed since checkpoint 6") && err.contains("--accept-plugin-change"),
        "{err}"
    );
    run_ok(&strs(&args(&["--accept-plugin-change"])))?;
    assert_eq!(fs::read_to_string(&f.output)?, f.expected);
    Ok(())
}

fn crc32(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the host's implementation.
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
