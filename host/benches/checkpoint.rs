//! Checkpoint cost at 1M keys with 1% dirty: delta vs full (time and bytes), the
//! processing-thread pause of a cut, restore time, and how well LZ4 compresses a real
//! operator's state (the `window` plugin with many open sliding windows). Prints a summary table with ratios at
//! the end (`bash scripts/bench.sh`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn::checkpoint::codec::Placement;
use cairn::checkpoint::{
    CheckpointConfig, CheckpointData, Checkpointer, Codec, Compression, Header, HostState, Kind,
    OperatorPart, OperatorSnapshot, restore,
};
use cairn::state::StateHolder;
use cairn::store::{CheckpointStore, FileStore, MemoryStore};
use cairn::{Engine, Event, Plugin};
use criterion::{Criterion, criterion_group};

/// As in the `cairn` binary.
#[global_allocator]
static ALLOC: cairn::alloc::HugePages = cairn::alloc::HugePages;

const KEYS: usize = 1_000_000;
const DIRTY: usize = KEYS / 100;

static SAMPLES: Mutex<BTreeMap<&'static str, Vec<f64>>> = Mutex::new(BTreeMap::new());
static BYTES: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
/// LZ4 on the window plugin's state: keys, the plain size of its entries (key and value bytes
/// plus a length byte each), uncompressed payload bytes, and per compression setting the
/// stored payload bytes and the encode time.
struct WindowLz4 {
    keys: usize,
    plain: u64,
    raw: u64,
    stored: Vec<(Compression, u64, Duration)>,
}
static WINDOW_LZ4: Mutex<Option<WindowLz4>> = Mutex::new(None);

fn record(name: &'static str, d: Duration) {
    SAMPLES
        .lock()
        .unwrap()
        .entry(name)
        .or_default()
        .push(d.as_secs_f64());
}

/// Key `count` in the scope of stream key `sensor-<i>` (as an operator's keyed state is stored).
fn key(i: usize) -> String {
    cairn_codec::scoped::compose(Some(&format!("sensor-{i:07}")), "count")
}

/// The instance of 4 (over the default 128 key groups) that owns key `i`.
fn owner_of_4(i: usize) -> usize {
    let g = cairn_codec::scoped::key_group(&format!("sensor-{i:07}"), 128);
    (g / 32) as usize
}

/// The big state split among 4 instances by key group.
fn big_state_in_4() -> Vec<StateHolder> {
    let mut parts: Vec<StateHolder> = (0..4).map(|_| StateHolder::new()).collect();
    for i in 0..KEYS {
        parts[owner_of_4(i)].set(&key(i), value(i, 0)).unwrap();
    }
    for p in &mut parts {
        p.clear_changes();
    }
    parts
}

/// [`touch`], each key in the instance that owns it.
fn touch_in_4(parts: &mut [StateHolder], round: usize) {
    let start = (round * 7919) % 100;
    for j in 0..DIRTY {
        let i = (j * 100 + start) % KEYS;
        parts[owner_of_4(i)].set(&key(i), value(i, round + 1)).unwrap();
    }
}

fn value(i: usize, round: usize) -> Vec<u8> {
    format!("{{\"count\":{},\"sum\":{}.5}}", i % 977 + round, i * 3 + round).into_bytes()
}

fn big_state() -> StateHolder {
    let mut s = StateHolder::new();
    for i in 0..KEYS {
        s.set(&key(i), value(i, 0)).unwrap();
    }
    s.clear_changes();
    s
}

/// Touch 1% of the keys (a different stripe each round).
fn touch(s: &mut StateHolder, round: usize) {
    let start = (round * 7919) % 100;
    for j in 0..DIRTY {
        let i = (j * 100 + start) % KEYS;
        s.set(&key(i), value(i, round + 1)).unwrap();
    }
}

/// One operator of 4 instances, as a cut sees it.
fn cut(four: &mut [StateHolder]) -> Vec<OperatorPart<'_>> {
    vec![OperatorPart {
        name: "bench",
        plugin_digest: "00".into(),
        config: "{}",
        key_groups: 128,
        expired: 0,
        state_version: 0,
        states: four.iter_mut().collect(),
    }]
}

fn part(state: &mut StateHolder) -> Vec<OperatorPart<'_>> {
    vec![OperatorPart::single("bench", "00".into(), "{}", state)]
}

fn checkpointer(store: Box<dyn CheckpointStore>, full_every: u32) -> Checkpointer {
    Checkpointer::start(
        store,
        Codec::plain(),
        CheckpointConfig {
            full_every,
            max_retained: 2,
        },
        None,
    )
    .unwrap()
}

fn bench_checkpoints(c: &mut Criterion) {
    let mut state = big_state();
    let mut round = 0;
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("checkpoint_1M_keys_1pct_dirty");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));

    // A real S3-compatible server (s3s-fs over a directory on this machine's disk).
    let s3 = cairn_tests::s3::S3Server::start().unwrap();
    for (label, full_every, store_kind) in [
        ("delta (file store)", u32::MAX, "file"),
        ("full (file store)", 0, "file"),
        ("delta (s3 store)", u32::MAX, "s3"),
        ("full (s3 store)", 0, "s3"),
        ("delta (encode only, memory store)", u32::MAX, "memory"),
        ("full (encode only, memory store)", 0, "memory"),
    ] {
        let name = label.replace([' ', '(', ')', ','], "_");
        let store: Box<dyn CheckpointStore> = match store_kind {
            "file" => Box::new(FileStore::open(dir.path().join(&name)).unwrap()),
            "s3" => cairn::store::open(&s3.url(&name, "")).unwrap(),
            _ => Box::new(MemoryStore::new()),
        };
        let mut ck = checkpointer(store, full_every);
        // The chain starts with a full; later ones are deltas when full_every allows.
        ck.checkpoint_now(HostState::default(), part(&mut state), None)
            .unwrap();
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    touch(&mut state, round);
                    let t = Instant::now();
                    let info = ck
                        .checkpoint_now(HostState::default(), part(&mut state), None)
                        .unwrap();
                    let d = t.elapsed();
                    total += d;
                    record(label, d);
                    BYTES.lock().unwrap().insert(label, info.bytes);
                }
                total
            })
        });
    }

    // The processing-thread pause: only the cut (delta taken, job handed to the writer).
    let mut ck = checkpointer(Box::new(MemoryStore::new()), u32::MAX);
    ck.checkpoint_now(HostState::default(), part(&mut state), None)
        .unwrap();
    g.bench_function("pause: cut of a 10k-key delta", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                touch(&mut state, round);
                let t = Instant::now();
                ck.begin(HostState::default(), part(&mut state), None).unwrap();
                let d = t.elapsed();
                ck.wait().unwrap().unwrap();
                total += d;
                record("pause: cut of a 10k-key delta", d);
            }
            total
        })
    });

    // The same cut over 4 instances (the same keys, each in its owner's state).
    let mut four = big_state_in_4();
    let mut ck = checkpointer(Box::new(MemoryStore::new()), u32::MAX);
    ck.checkpoint_now(HostState::default(), cut(&mut four), None)
        .unwrap();
    g.bench_function("pause: cut of a 10k-key delta over 4 instances", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                touch_in_4(&mut four, round);
                let t = Instant::now();
                ck.begin(HostState::default(), cut(&mut four), None).unwrap();
                let d = t.elapsed();
                ck.wait().unwrap().unwrap();
                total += d;
                record("pause: cut of a 10k-key delta over 4 instances", d);
            }
            total
        })
    });
    drop((ck, four));

    // Restore of the newest checkpoint: full base (1M keys) + deltas.
    let store = MemoryStore::new();
    let mut ck = checkpointer(Box::new(store.clone()), 3);
    for _ in 0..4 {
        round += 1;
        touch(&mut state, round);
        ck.checkpoint_now(HostState::default(), part(&mut state), None)
            .unwrap();
    }
    drop(ck);
    g.bench_function("restore 1M keys (full + 3 deltas)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let r = restore(&store, &Codec::plain(), None).unwrap().unwrap();
                let d = t.elapsed();
                assert_eq!(r.operators[0].state.len(), KEYS);
                total += d;
                record("restore 1M keys (full + 3 deltas)", d);
            }
            total
        })
    });
    g.finish();
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn ms(s: f64) -> String {
    format!("{:.3} ms", s * 1e3)
}

fn summary() {
    let samples = SAMPLES.lock().unwrap();
    let bytes = BYTES.lock().unwrap();
    let m = |k: &str| samples.get(k).map(|v| median(v)).unwrap_or(f64::NAN);
    let b = |k: &str| bytes.get(k).copied().unwrap_or(0);
    println!();
    println!("== checkpoint summary: {KEYS} keys, {DIRTY} dirty (1%), medians ==");
    println!("| measure | delta | full | delta / full |");
    println!("|---|---|---|---|");
    for (what, d, f) in [
        (
            "time, file store (encode + fsync + rename)",
            "delta (file store)",
            "full (file store)",
        ),
        (
            "time, s3 store (encode + upload to s3s-fs on loopback)",
            "delta (s3 store)",
            "full (s3 store)",
        ),
        (
            "time, memory store (encode only)",
            "delta (encode only, memory store)",
            "full (encode only, memory store)",
        ),
    ] {
        println!(
            "| {what} | {} | {} | {:.2}% |",
            ms(m(d)),
            ms(m(f)),
            100.0 * m(d) / m(f)
        );
    }
    let (bd, bf) = (b("delta (file store)"), b("full (file store)"));
    println!("| bytes | {bd} | {bf} | {:.2}% |", 100.0 * bd as f64 / bf as f64);
    let (sd, sf) = (b("delta (s3 store)"), b("full (s3 store)"));
    println!(
        "| bytes, s3 store (same format) | {sd} | {sf} | {:.2}% |",
        100.0 * sd as f64 / sf as f64
    );
    println!(
        "| processing-thread pause, 10k dirty keys | {} | | |",
        ms(m("pause: cut of a 10k-key delta"))
    );
    println!(
        "| processing-thread pause, 10k dirty keys over 4 instances | {} | | |",
        ms(m("pause: cut of a 10k-key delta over 4 instances"))
    );
    println!(
        "| restore, 1M keys (full + 3 deltas) | | {} | |",
        ms(m("restore 1M keys (full + 3 deltas)"))
    );
    if let Some(w) = &*WINDOW_LZ4.lock().unwrap() {
        println!();
        println!(
            "| `window` state ({} keys: {} bytes of keys and values), full checkpoint | payload before LZ4 | stored | saved vs plain | encode |",
            w.keys, w.plain
        );
        println!("|---|---|---|---|---|");
        for (c, stored, took) in &w.stored {
            println!(
                "| `--checkpoint-compression {c}` | {} | {stored} | {:.1}% | {} |",
                w.raw,
                100.0 * (1.0 - *stored as f64 / w.plain as f64),
                ms(took.as_secs_f64())
            );
        }
    }
}

/// The `window` plugin (1-minute windows sliding every 10 s, 2 s out-of-order allowance) after
/// 200k readings from 2,000 sensors: its state holds every open window's running aggregates and
/// the time index that closes them. A full checkpoint of it: uncompressed vs LZ4 payload.
fn window_state_lz4() {
    let wasm = cairn_tests::plugin("window");
    let engine = Engine::new().unwrap();
    let mut op = Plugin::load(&engine, &wasm)
        .unwrap()
        .operator()
        .config(r#"{"field": "temp", "size_ms": 60000, "slide_ms": 10000, "out_of_order_ms": 2000}"#)
        .build()
        .unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for batch in 0..200 {
        let events: Vec<Event> = (0..1000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = batch * 1000 + i;
                Event {
                    key: format!("sensor-{:04}", x % 2000),
                    ts: 1_700_000_000_000 + n as i64 * 5 - (x >> 50) as i64 % 2000,
                    value: format!(r#"{{"temp":{}.{}}}"#, 15 + x % 15, x % 10).into_bytes(),
                }
            })
            .collect();
        op.process(&events).unwrap();
        // As `cairn run` does after each batch: event time reached the highest ts seen.
        let max_ts = events.iter().map(|e| e.ts).max().unwrap();
        op.on_watermark(max_ts).unwrap();
    }
    let keys = op.state().len();
    let plain: u64 = op
        .state()
        .iter()
        .map(|(k, v)| (k.len() + v.len() + 2) as u64)
        .sum();
    let data = CheckpointData {
        host: HostState::default(),
        operators: vec![OperatorSnapshot {
            name: "window".into(),
            plugin_digest: op.plugin().digest_hex(),
            config: String::new(),
            key_groups: cairn_codec::scoped::DEFAULT_KEY_GROUPS,
            parallelism: 1,
            expired: 0,
            state_version: 0,
            state: op.state().snapshot(),
        }],
    };
    let at = Placement {
        id: 1,
        kind: Kind::Full,
        base: 1,
        parent: None,
    };
    let mut raw = 0;
    let stored = [Compression::Fast, Compression::default(), Compression::High(9)]
        .into_iter()
        .map(|c| {
            let codec = Codec::plain().with_compression(c);
            let t = Instant::now();
            let bytes = codec.encode(at, 0, &data).unwrap();
            let took = t.elapsed();
            let h = Header::decode(&bytes).unwrap();
            // Format 5: the index's raw length in the header, the blocks' in the index.
            let blocks = codec.layout(1, &bytes).unwrap().unwrap_or_default();
            raw = h.raw_len
                + blocks
                    .iter()
                    .flat_map(|o| &o.blocks)
                    .map(|b| b.raw_len)
                    .sum::<u64>();
            (c, h.payload_len, took)
        })
        .collect();
    *WINDOW_LZ4.lock().unwrap() = Some(WindowLz4 {
        keys,
        plain,
        raw,
        stored,
    });
}

criterion_group!(benches, bench_checkpoints);

fn main() {
    window_state_lz4();
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
