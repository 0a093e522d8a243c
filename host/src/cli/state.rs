//! `cairn state`: an operator's state at a checkpoint or savepoint, read out and written back
//! (the state processor; `cairn::checkpoint::{export, import}`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn::checkpoint::{Restored, export, import, restore, savepoint};
use clap::{Args, Subcommand};

use super::store_args::StoreArgs;

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    command: StateCommand,
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Write an operator's state as JSON Lines, one entry a line, values as stored (valid JSON
    /// embedded as it is, other bytes as base64), timers and the host's records included.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The operator (its name in the job).
        #[arg(long)]
        operator: String,
        /// A checkpoint id, `latest`, or a savepoint's name.
        #[arg(long, default_value = "latest")]
        checkpoint: String,
        /// Write here (created with mode 0600: the state is written in the clear, even from an
        /// encrypted store) instead of stdout.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Build an operator's state from JSON Lines as `export` writes them and write it as a full
    /// checkpoint: into an empty store (a job that starts with it), or with --into-latest over
    /// the newest checkpoint (that operator's state replaced or added, the rest kept).
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The operator (its name in the job).
        #[arg(long)]
        operator: String,
        /// The lines (default: stdin).
        #[arg(long)]
        input: Option<std::path::PathBuf>,
        /// The operator's plugin (its digest is recorded) [default: the export's header, else
        /// the checkpoint's].
        #[arg(long)]
        plugin: Option<std::path::PathBuf>,
        /// The operator's configuration [default: the export's header, else the checkpoint's].
        #[arg(long)]
        config: Option<String>,
        /// The job's name, for a new job.
        #[arg(long, default_value = "default")]
        job: String,
        /// Write over the newest checkpoint of the store instead of needing an empty store.
        #[arg(long)]
        into_latest: bool,
    },
    /// Print one entry's value as stored (exit 1 when absent).
    Get {
        #[command(flatten)]
        store: StoreArgs,
        /// The operator (its name in the job).
        #[arg(long)]
        operator: String,
        /// The scope's stream key; without it, the operator-wide scope.
        #[arg(long)]
        scope: Option<String>,
        /// The key within the scope.
        key: String,
        /// A checkpoint id, `latest`, or a savepoint's name.
        #[arg(long, default_value = "latest")]
        checkpoint: String,
    },
}

pub fn state(args: StateArgs) -> Result<ExitCode> {
    match args.command {
        StateCommand::Import {
            store,
            operator,
            input,
            plugin,
            config,
            job,
            into_latest,
        } => {
            use sha2::Digest as _;
            let (plugin_digest, state_version) = match &plugin {
                Some(p) => {
                    let bytes =
                        std::fs::read(p).with_context(|| format!("could not read plugin {}", p.display()))?;
                    let declared = cairn::plugin::read_declared(&p.display().to_string(), &bytes)?;
                    (
                        Some(hex::encode(sha2::Sha256::digest(&bytes))),
                        declared.state_version,
                    )
                }
                None => (None, None),
            };
            let config = config.map(|c| super::run::read_config(&c)).transpose()?;
            let (mut st, codec) = store.open()?;
            let target = import::ImportTarget {
                operator: operator.clone(),
                plugin_digest,
                state_version,
                config,
                job,
                into_latest,
            };
            let id = match &input {
                Some(path) => {
                    let f = std::fs::File::open(path)
                        .with_context(|| format!("could not open {}", path.display()))?;
                    import::import(st.as_mut(), &codec, &target, &mut std::io::BufReader::new(f))?
                }
                None => import::import(st.as_mut(), &codec, &target, &mut std::io::stdin().lock())?,
            };
            eprintln!(
                "operator {operator:?} imported into {} as checkpoint {id}",
                store.store
            );
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Export {
            store,
            operator,
            checkpoint,
            output,
        } => {
            let r = restored(&store, &checkpoint)?;
            let op = operator_of(&r, &operator)?;
            let n = match &output {
                Some(path) => {
                    let mut f = private_file(path)?;
                    let n = export::export(op, &mut f)?;
                    f.flush()?;
                    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    n
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let n = export::export(op, &mut out)?;
                    out.flush()?;
                    n
                }
            };
            eprintln!(
                "operator {operator:?} at checkpoint {}: {n} entries exported from {}",
                r.id, store.store
            );
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Get {
            store,
            operator,
            scope,
            key,
            checkpoint,
        } => {
            let r = restored(&store, &checkpoint)?;
            let op = operator_of(&r, &operator)?;
            match export::get(op, scope.as_deref(), &key) {
                Some(v) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(v)?;
                    out.write_all(b"\n")?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!(
                        "no key {key:?} in {} of operator {operator:?} at checkpoint {}",
                        scope.map_or("the operator-wide scope".to_string(), |s| format!("scope {s:?}")),
                        r.id
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// The state at `at`: `latest`, a checkpoint id, or a savepoint's name.
fn restored(args: &StoreArgs, at: &str) -> Result<Restored> {
    let (store, codec) = args.open()?;
    if at != "latest" && !at.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(savepoint::load(
            store.as_ref(),
            &codec,
            at,
            &|_| None,
            &mut Default::default(),
        )?);
    }
    let id = match at {
        "latest" => None,
        n => Some(
            n.parse::<u64>()
                .with_context(|| format!("{n:?} is not a checkpoint id"))?,
        ),
    };
    match restore(store.as_ref(), &codec, id)? {
        Some(r) => Ok(r),
        None => bail!("no checkpoints in {}", args.store),
    }
}

fn operator_of<'a>(r: &'a Restored, name: &str) -> Result<&'a cairn::checkpoint::RestoredOperator> {
    r.operators.iter().find(|o| o.name == name).with_context(|| {
        let names: Vec<&str> = r.operators.iter().map(|o| o.name.as_str()).collect();
        format!("checkpoint {} has no operator {name:?}; it has {names:?}", r.id)
    })
}

/// A new file readable by its owner only.
fn private_file(path: &std::path::Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    Ok(std::io::BufWriter::new(f))
}
