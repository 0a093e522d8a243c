//! Per-event cost of a stateful operator in WASM vs the same code native, the cost of one
//! guest→host state call, an empty call, and plugin cold start from the component cache vs
//! compiling. Prints a summary table with ratios at the end (`bash scripts/bench.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn::engine::ComponentCache;
use cairn::{Batch, Engine, Event, OperatorInstance, Plugin};
use criterion::{Criterion, criterion_group};

static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(name: &str, per_unit: f64) {
    SAMPLES
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .push(per_unit);
}

/// The plugin as built for this run by `cairn-tests` (never stale).
fn plugin_path(name: &str) -> PathBuf {
    cairn_tests::plugin(name)
}

fn events(n: usize, keys: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            key: format!("sensor-{}", (i * 7919) % keys),
            ts: i as i64,
            value: br#"{"temp":21.5}"#.to_vec(),
        })
        .collect()
}

fn sdk_events(n: usize, keys: usize) -> Vec<cairn_sdk::Event> {
    events(n, keys)
        .into_iter()
        .map(|e| cairn_sdk::Event::new(e.key, e.ts, e.value))
        .collect()
}

/// Time `iters` runs of `f`, each handling `units` units; records ns per unit.
fn per_unit(name: &str, units: usize, iters: u64, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let d = t.elapsed();
    record(name, d.as_nanos() as f64 / (iters as f64 * units as f64));
    d
}

/// Time the operator `plugin` in WASM and its very code natively (`native` builds it), per event.
fn per_event_pair<T: cairn_sdk::Operator>(c: &mut Criterion, engine: &Engine, plugin: &str) {
    let wasm = Plugin::load(engine, plugin_path(plugin)).unwrap();
    let mut g = c.benchmark_group(format!("{plugin}_per_event"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for batch in [1usize, 64, 1024] {
        // The host's own path (`cairn run` reads input straight into a `Batch`).
        let evs = Batch::from_events(&events(batch, 1000)).unwrap();
        let mut op: OperatorInstance = wasm.operator().build().unwrap();
        let name = format!("{plugin} wasm, batch {batch}");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                per_unit(&name, batch, iters, || {
                    std::hint::black_box(op.process_batch(&evs).unwrap());
                })
            })
        });
        // The same operator code, compiled natively (cairn-sdk's native state backend).
        cairn_sdk::state::native::reset(Default::default());
        let mut native = T::init(&cairn_sdk::Config::new("{}")).unwrap();
        let sevs = sdk_events(batch, 1000);
        let name = format!("{plugin} native, batch {batch}");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                per_unit(&name, batch, iters, || {
                    let mut out = cairn_sdk::Output::new();
                    native.on_batch(sevs.clone(), &mut out).unwrap();
                    std::hint::black_box(out.take());
                })
            })
        });
    }
    g.finish();
}

fn bench_per_event(c: &mut Criterion) {
    let engine = Engine::new().unwrap();
    per_event_pair::<counter::Counter>(c, &engine, "counter");
    per_event_pair::<counter_batched::CounterBatched>(c, &engine, "counter-batched");
}

fn bench_calls(c: &mut Criterion) {
    let engine = Engine::new().unwrap();
    let probe = Plugin::load(&engine, plugin_path("bench-probe")).unwrap();
    let counter = Plugin::load(&engine, plugin_path("counter")).unwrap();
    let mut g = c.benchmark_group("calls");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut empty = counter.operator().build().unwrap();
    g.bench_function("empty process call", |b| {
        b.iter_custom(|iters| {
            per_unit("empty process call", 1, iters, || {
                std::hint::black_box(empty.process(&[]).unwrap());
            })
        })
    });
    const N: usize = 1000;
    let one = events(1, 1);
    for op in ["none", "get-hit", "get-miss", "set", "get-many", "set-many"] {
        let mut inst = probe
            .operator()
            .config(format!(r#"{{"op": "{op}", "n": {N}}}"#))
            .build()
            .unwrap();
        let name = format!("probe {op} x{N}");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                per_unit(&name, 1, iters, || {
                    inst.process(&one).unwrap();
                })
            })
        });
    }
    // Inside a batch of several events the SDK holds writes back and answers prefetched reads
    // itself: 4 events x 1000 operations.
    let four = events(4, 1);
    for op in ["set", "get-prefetched"] {
        let mut inst = probe
            .operator()
            .config(format!(r#"{{"op": "{op}", "n": {N}}}"#))
            .build()
            .unwrap();
        let name = format!("probe {op} x{N}, batch of 4");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                per_unit(&name, 4, iters, || {
                    inst.process(&four).unwrap();
                })
            })
        });
    }
    let mut none4 = probe
        .operator()
        .config(r#"{"op": "none", "n": 0}"#)
        .build()
        .unwrap();
    g.bench_function("probe none, batch of 4", |b| {
        b.iter_custom(|iters| {
            per_unit("probe none, batch of 4", 4, iters, || {
                none4.process(&four).unwrap();
            })
        })
    });
    // Moving events in and out: a plugin that re-emits each event, WASM and native.
    let mut echo = probe
        .operator()
        .config(r#"{"op": "echo", "n": 0}"#)
        .build()
        .unwrap();
    let evs = Batch::from_events(&events(1024, 1000)).unwrap();
    g.bench_function("echo, batch 1024", |b| {
        b.iter_custom(|iters| {
            per_unit("echo, batch 1024", 1024, iters, || {
                std::hint::black_box(echo.process_batch(&evs).unwrap());
            })
        })
    });
    g.finish();
}

fn bench_cold_start(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cached = Engine::new()
        .unwrap()
        .with_cache(Some(ComponentCache::new(dir.path())));
    let uncached = Engine::new().unwrap().with_cache(None);
    let path = plugin_path("counter");
    Plugin::load(&cached, &path).unwrap(); // fill the cache
    let mut g = c.benchmark_group("cold_start");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    for (name, engine) in [("from cache", &cached), ("compiling", &uncached)] {
        let label = format!("load + instantiate counter, {name}");
        g.bench_function(&label, |b| {
            b.iter_custom(|iters| {
                per_unit(&label, 1, iters, || {
                    let p = Plugin::load(engine, &path).unwrap();
                    std::hint::black_box(p.operator().build().unwrap());
                })
            })
        });
    }
    g.finish();
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn summary() {
    let s = SAMPLES.lock().unwrap();
    let m = |k: &str| s.get(k).map(|v| median(v)).unwrap_or(f64::NAN);
    println!();
    println!("== runtime summary (medians) ==");
    println!("| count-per-key, per event | WASM | native | WASM / native |");
    println!("|---|---|---|---|");
    for plugin in ["counter", "counter-batched"] {
        for b in [1, 64, 1024] {
            let (w, n) = (
                m(&format!("{plugin} wasm, batch {b}")),
                m(&format!("{plugin} native, batch {b}")),
            );
            println!(
                "| `{plugin}`, batch {b} | {w:.0} ns | {n:.0} ns | {:.2}x |",
                w / n
            );
        }
    }
    let none = m("probe none x1000");
    println!();
    println!("| call | cost |");
    println!("|---|---|");
    println!(
        "| empty `process` call (host → guest) | {:.0} ns |",
        m("empty process call")
    );
    for op in ["get-hit", "get-miss", "set", "get-many", "set-many"] {
        let what = match op {
            "get-many" => "one key of a 1000-key `get-many` (hits)".to_string(),
            "set-many" => "one entry of a 1000-entry `set-many`".to_string(),
            _ => format!("one state `{op}` (guest → host)"),
        };
        println!(
            "| {what} | {:.0} ns |",
            (m(&format!("probe {op} x1000")) - none) / 1000.0
        );
    }
    let none4 = m("probe none, batch of 4");
    println!(
        "| one `set` held back by the SDK (4 events x 1000 sets, sent in one call) | {:.0} ns |",
        (m("probe set x1000, batch of 4") - none4) / 1000.0
    );
    println!(
        "| one `get` of a prefetched key (4 events x (prefetch 1000 keys + 1000 gets)) | {:.0} ns |",
        (m("probe get-prefetched x1000, batch of 4") - none4) / 1000.0
    );
    println!(
        "| moving one event in and out (a plugin re-emitting each event, batch 1024) | {:.0} ns |",
        m("echo, batch 1024")
    );
    let (hit, miss) = (
        m("load + instantiate counter, from cache"),
        m("load + instantiate counter, compiling"),
    );
    println!(
        "| cold start: load + instantiate, from the component cache | {:.2} ms |",
        hit / 1e6
    );
    println!(
        "| cold start: load + instantiate, compiling | {:.2} ms ({:.1}x slower) |",
        miss / 1e6,
        miss / hit
    );
}

criterion_group!(benches, bench_per_event, bench_calls, bench_cold_start);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
