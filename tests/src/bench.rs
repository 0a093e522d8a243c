//! What the bench binaries (`e2e-bench`, `lang-bench`) share: their flags, the generated input,
//! timing a command (wall and CPU time, peak memory), medians.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// The number after flag `name`, or `default`.
pub fn arg(args: &[String], name: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a number"))?
            .parse()
            .with_context(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

/// Deterministic input: `n` events over `keys` keys, ts rising by 1 ms.
pub fn write_input(path: &Path, n: usize, keys: u64) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(
            w,
            "{{\"key\":\"sensor-{}\",\"ts\":{},\"value\":{{\"temp\":{}.5}}}}",
            x % keys,
            1_700_000_000_000u64 + i as u64,
            x % 100
        )?;
    }
    Ok(())
}

/// Run `cmd` to success; how long it took.
pub fn time(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let d = t.elapsed();
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(d)
}

/// What one run of a whole process cost.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// From spawning it to its exit.
    pub wall: Duration,
    /// CPU time, user and system, of the process and every thread it ran (`ru_utime` +
    /// `ru_stime`).
    pub cpu: Duration,
    /// Peak resident memory in bytes (`ru_maxrss`).
    pub rss: u64,
}

/// Run `cmd` to success and measure it (the kernel's `rusage` for that one child, read by
/// `wait4`). The kernel counts the memory the child had before its `exec` — a copy of this
/// process — so keep this process small (compare outputs with [`same_file`], not by reading
/// them whole).
pub fn measure(cmd: &mut Command) -> Result<Measured> {
    use std::io::{Read, Seek};
    let mut err = tempfile::tempfile()?;
    let t = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(err.try_clone()?)
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not waited for yet; both pointers are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    ensure!(
        r == pid,
        "waiting for {cmd:?}: {}",
        std::io::Error::last_os_error()
    );
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut text = String::new();
        err.rewind()?;
        err.read_to_string(&mut text)?;
        anyhow::bail!("{cmd:?} failed: {text}");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Measured {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss: usage.ru_maxrss.max(0) as u64 * 1024,
    })
}

/// Whether two files hold the same bytes, read in 64 KiB chunks.
pub fn same_file(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let open = |p: &Path| -> Result<std::io::BufReader<std::fs::File>> {
        Ok(std::io::BufReader::with_capacity(
            1 << 16,
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        ))
    };
    if std::fs::metadata(a)?.len() != std::fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut ra, mut rb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = ra.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        rb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// The median.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A reader following `url` (a stream filtered to the output subject), its lines on a pipe.
pub fn follow(
    cairn: &Path,
    url: &str,
) -> Result<(std::process::Child, std::io::BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(cairn)
        .args([
            "cat",
            "--follow",
            "--batch-wait",
            "1ms",
            "--input",
            url,
            "--output",
            "-",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let out = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    Ok((child, out))
}
