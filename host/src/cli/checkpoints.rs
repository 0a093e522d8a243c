use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn::checkpoint::inspect::{self, Listed};
use cairn::checkpoint::{JsonlPosition, copy_store, restore, savepoint};
use clap::{Args, Subcommand};

use super::store_args::StoreArgs;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct CheckpointsArgs {
    #[command(subcommand)]
    command: CheckpointsCommand,
}

#[derive(Debug, Subcommand)]
enum CheckpointsCommand {
    /// List the store's checkpoints: id, kind, base, size, time, offsets.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the restored state of every operator at a checkpoint.
    Show {
        /// A checkpoint id, or `latest`.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every checkpoint of the store (integrity and chain); exits 1 on any damage.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pin a checkpoint (with its chain) as a savepoint: one self-contained full checkpoint under
    /// a name, never deleted by retention or a TTL; `cairn run --restore-from NAME` starts from it.
    Pin {
        /// A checkpoint id, or `latest`.
        id: String,
        /// The savepoint's name (letters, digits, '.', '_', '-'; not all digits).
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Release a savepoint.
    Unpin {
        /// The savepoint's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Copy every committed checkpoint (byte for byte, encryption kept) into an empty store,
    /// e.g. from file: to redis://, so the job can resume there.
    Copy {
        /// The source store.
        #[arg(long)]
        from: String,
        /// The destination store (must hold no checkpoints).
        #[arg(long)]
        to: String,
    },
}

pub fn checkpoints(args: CheckpointsArgs) -> Result<ExitCode> {
    match args.command {
        CheckpointsCommand::List { store, json } => list(&store, json),
        CheckpointsCommand::Show { id, store, json } => show(&id, &store, json),
        CheckpointsCommand::Verify { store, json } => verify(&store, json),
        CheckpointsCommand::Copy { from, to } => copy(&from, &to),
        CheckpointsCommand::Pin { id, name, store } => pin(&id, &name, &store),
        CheckpointsCommand::Unpin { name, store } => unpin(&name, &store),
    }
}

/// `latest` or a checkpoint id.
fn checkpoint_id(id: &str) -> Result<Option<u64>> {
    Ok(match id {
        "latest" => None,
        n => Some(
            n.parse::<u64>()
                .with_context(|| format!("{n:?} is not a checkpoint id (a number, or `latest`)"))?,
        ),
    })
}

fn pin(id: &str, name: &str, args: &StoreArgs) -> Result<ExitCode> {
    let (mut store, codec) = args.open()?;
    let s = savepoint::pin(store.as_mut(), &codec, checkpoint_id(id)?, name)?;
    println!(
        "savepoint {:?}: checkpoint {} pinned, {} bytes, in {}",
        s.name, s.checkpoint, s.bytes, args.store
    );
    Ok(ExitCode::SUCCESS)
}

fn unpin(name: &str, args: &StoreArgs) -> Result<ExitCode> {
    let (mut store, _) = args.open()?;
    let s = savepoint::unpin(store.as_mut(), name)?;
    println!(
        "savepoint {:?} (checkpoint {}) released from {}",
        s.name, s.checkpoint, args.store
    );
    Ok(ExitCode::SUCCESS)
}

fn time_text(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

fn list(args: &StoreArgs, as_json: bool) -> Result<ExitCode> {
    let url = &args.store;
    let (store, codec) = args.open()?;
    let rows = inspect::list(store.as_ref(), &codec)?;
    let savepoints = savepoint::list(store.as_ref())?;
    if as_json {
        let mut rows: Vec<Value> = rows
            .iter()
            .map(|r| match r {
                Listed::Ok(s) => {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    v["created"] = json!(time_text(s.created_ms));
                    v
                }
                Listed::Damaged(d) => json!(d),
            })
            .collect();
        rows.extend(savepoints.iter().map(|s| {
            json!({ "savepoint": s.name, "checkpoint": s.checkpoint, "bytes": s.bytes, "pinned": time_text(s.pinned_ms) })
        }));
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &savepoints {
        println!(
            "savepoint {:?}: checkpoint {}, {} bytes, pinned {}",
            s.name,
            s.checkpoint,
            s.bytes,
            time_text(s.pinned_ms)
        );
    }
    if rows.is_empty() {
        println!("no checkpoints in {url}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6} {:<5} {:>6} {:>5} {:>10} {:>9} {:<20} {:>12} {:>12} {:>10}  keys",
        "id", "kind", "base", "chain", "bytes", "write_ms", "created", "input_off", "output_len", "events_in"
    );
    for r in rows {
        match r {
            Listed::Damaged(d) => println!("{:>6} DAMAGED: {}", d.id, d.error),
            Listed::Ok(s) => println!(
                "{:>6} {:<5} {:>6} {:>5} {:>10} {:>9} {:<20} {:>12} {:>12} {:>10}  {}{}",
                s.id,
                s.kind.to_string(),
                s.base,
                s.chain_len,
                s.bytes,
                s.write_us
                    .map_or("-".to_string(), |us| format!("{:.1}", f64::from(us) / 1000.0)),
                time_text(s.created_ms),
                s.input_offset,
                s.output_len,
                s.events_in,
                s.keys
                    .iter()
                    .map(|k| format!("{}={}", k.operator, k.keys))
                    .collect::<Vec<_>>()
                    .join(" "),
                if s.latest { "  (latest)" } else { "" }
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A state value as JSON when it is JSON, as a string when it is text, as bytes otherwise.
fn value_json(v: &[u8]) -> Value {
    if let Ok(j) = serde_json::from_slice::<Value>(v) {
        return j;
    }
    match std::str::from_utf8(v) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "bytes": v }),
    }
}

fn show(id: &str, args: &StoreArgs, as_json: bool) -> Result<ExitCode> {
    let url = &args.store;
    let (store, codec) = args.open()?;
    let at = match id {
        "latest" => None,
        n => Some(
            n.parse::<u64>()
                .with_context(|| format!("{n:?} is not a checkpoint id (a number, or `latest`)"))?,
        ),
    };
    let Some(r) = restore(store.as_ref(), &codec, at)? else {
        bail!("no checkpoints in {url}");
    };
    // This checkpoint's own blocks by key-group range (format 5 on).
    let layout = match store.get(r.id)? {
        Some(bytes) => codec.layout(r.id, &bytes).unwrap_or_default(),
        None => None,
    };
    let operators: Vec<Value> = r
        .operators
        .iter()
        .enumerate()
        .map(|(i, o)| {
            // The operator's own entries; the host's (timers, TTL records) apart.
            let mut state = serde_json::Map::new();
            let mut timers = Vec::new();
            for (k, v) in o.state.iter() {
                if let Some((key, ts)) = cairn_codec::timers::parse(k) {
                    timers.push(json!({ "key": key, "ts": ts }));
                } else if !k.starts_with('!') {
                    state.insert(k.to_string(), value_json(v));
                }
            }
            let blocks: Vec<Value> = layout
                .as_ref()
                .and_then(|l| l.get(i))
                .map(|op| {
                    op.blocks
                        .iter()
                        .map(|b| {
                            json!({
                                "groups": b.groups.map(|(lo, hi)| json!([lo, hi])),
                                "sets": b.sets, "deletes": b.deletes,
                                "raw_bytes": b.raw_len, "stored_bytes": b.stored_len,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "name": o.name, "key_groups": o.key_groups, "parallelism": o.parallelism,
                "state_version": o.state_version, "plugin_digest": o.plugin_digest,
                "config": o.config, "keys": state.len(), "state": state,
                "timers": timers, "expired_keys": o.expired, "blocks": blocks,
            })
        })
        .collect();
    let mut host = serde_json::to_value(&r.host)?;
    // The source's record as the source wrote it: JSON text for a JSON Lines input.
    host["source"] = json!({
        "kind": r.host.source.kind,
        "position": serde_json::from_slice::<Value>(&r.host.source.record)
            .unwrap_or_else(|_| json!({ "bytes": r.host.source.record })),
    });
    let doc = json!({
        "id": r.id, "kind": r.header.kind, "chain": r.chain, "created": time_text(r.header.created_ms),
        "host": host, "operators": operators,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "checkpoint {} ({}, chain {:?}), created {}",
        r.id,
        r.header.kind,
        r.chain,
        time_text(r.header.created_ms)
    );
    let h = &r.host;
    let at = match JsonlPosition::from_source(&h.source) {
        Some(p) => format!("input {:?} at byte {} (line {})", p.input, p.offset, p.line),
        // Other sources write JSON records too (a NATS stream: its name and sequence).
        None => format!(
            "a source of kind `{}` at {}",
            h.source.kind,
            String::from_utf8_lossy(&h.source.record)
        ),
    };
    println!(
        "job {:?}: {at}, output at {} bytes, {} events in, {} out, watermark {:?}",
        h.job, h.output_len, h.events_in, h.events_out, h.watermark
    );
    for o in &operators {
        let digest = o["plugin_digest"].as_str().unwrap_or_default();
        let timers = o["timers"].as_array().map_or(&[][..], Vec::as_slice);
        println!(
            "operator {} ({} key groups, taken at parallelism {}, state version {}, plugin {}…), {} keys, {} timers, {} keys expired by state TTL so far:",
            o["name"],
            o["key_groups"],
            o["parallelism"],
            o["state_version"],
            &digest[..12.min(digest.len())],
            o["keys"],
            timers.len(),
            o["expired_keys"]
        );
        for b in o["blocks"].as_array().map_or(&[][..], Vec::as_slice) {
            let groups = match b["groups"].as_array() {
                Some(r) => format!("key groups {}..{}", r[0], r[1]),
                None => "operator-wide".to_string(),
            };
            println!(
                "  block {groups}: {} set, {} removed, {} bytes ({} stored) in this checkpoint",
                b["sets"], b["deletes"], b["raw_bytes"], b["stored_bytes"]
            );
        }
        if let Some(m) = o["state"].as_object() {
            for (k, v) in m {
                println!("  {k} = {v}");
            }
        }
        for t in timers {
            println!("  timer {} at {}", t["key"], t["ts"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &StoreArgs, as_json: bool) -> Result<ExitCode> {
    let url = &args.store;
    let (store, codec) = args.open()?;
    let report = inspect::verify(store.as_ref(), &codec)?;
    let bad = report.damaged();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.checkpoints {
            match (&c.error, c.kind) {
                (Some(e), _) => println!("checkpoint {}: DAMAGED: {e}", c.id),
                (None, Some(kind)) => println!("checkpoint {}: ok ({kind}, chain {:?})", c.id, c.chain),
                (None, None) => println!("checkpoint {}: ok", c.id),
            }
        }
        let n = report.checkpoints.len();
        if bad > 0 {
            println!("{bad} of {n} checkpoints in {url} are damaged");
        } else {
            println!("all {n} checkpoints in {url} are valid");
        }
    }
    Ok(if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn copy(from: &str, to: &str) -> Result<ExitCode> {
    let src = cairn::store::open(from)?;
    let mut dst = cairn::store::open(to)?;
    let ids = copy_store(src.as_ref(), dst.as_mut())?;
    println!("copied {} checkpoints from {from} to {to}: {ids:?}", ids.len());
    Ok(ExitCode::SUCCESS)
}
