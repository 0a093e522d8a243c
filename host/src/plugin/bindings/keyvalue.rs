//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`: what Spin 3 components import)
//! and `@0.2.0-draft` (wasmtime-wasi-keyvalue's: a u64 `list-keys` cursor, a u64 `increment`,
//! no `cas`), backed by the operator's state: bucket `default` is the operator-wide scope of
//! `cairn:operator/state`, with the same dirty tracking, quotas, transactions and checkpoints.
//! Other bucket names are refused. wasi:keyvalue knows no keys of events, so its entries are
//! never split between parallel instances. Each function calls the state core with the
//! operator-wide scope; a refusal is `error.other` with the core's message. `increment` keeps the number as decimal text (as the
//! Cairn SDKs' counters do); a value that is not one is an error.

use wasmtime::component::{ComponentType, Lift, Linker, Lower, Resource, ResourceType};

use super::{Ctx, InstanceData};
use crate::state::{StateError, Value};

/// The package version Spin 3 components import.
const DRAFT2: &str = "0.2.0-draft2";
/// The package version wasmtime-wasi-keyvalue hosts.
const DRAFT: &str = "0.2.0-draft";
/// The only bucket.
const BUCKET: &str = "default";
/// Keys per `list-keys` page.
const PAGE: usize = 1000;

/// `bucket` (there is one; it holds nothing).
pub(crate) struct Bucket;

/// `cas`: a key and its value when the handle was made.
pub(crate) struct Cas {
    key: String,
    current: Option<Vec<u8>>,
}

#[derive(ComponentType, Lower, Lift)]
#[component(variant)]
enum Error {
    #[component(name = "no-such-store")]
    NoSuchStore,
    #[component(name = "access-denied")]
    AccessDenied,
    #[component(name = "other")]
    Other(String),
}

/// draft2's `key-response`: the cursor is the last key listed.
#[derive(ComponentType, Lower)]
#[component(record)]
struct KeyResponse {
    keys: Vec<String>,
    cursor: Option<String>,
}

/// draft's `key-response`: the cursor is how many keys were listed before the next page.
#[derive(ComponentType, Lower)]
#[component(record)]
struct KeyResponseU64 {
    keys: Vec<String>,
    cursor: Option<u64>,
}

#[derive(ComponentType, Lower)]
#[component(variant)]
enum CasError {
    #[component(name = "store-error")]
    StoreError(Error),
    #[component(name = "cas-failed")]
    CasFailed(Resource<Cas>),
}

type R<T> = wasmtime::Result<(Result<T, Error>,)>;
/// `get-many`'s answer: each key with its value, or none.
type Found = Vec<Option<(String, Vec<u8>)>>;

fn other(e: StateError) -> Error {
    Error::Other(e.to_string())
}

fn get(data: &mut InstanceData, key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(data.state.get(None, key).map_err(other)?.map(|v| v.to_vec()))
}

fn set(data: &mut InstanceData, key: &str, value: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::Other("a key must not be empty".into()));
    }
    data.state.set(None, key, Value::from(value)).map_err(other)
}

fn delete(data: &mut InstanceData, key: &str) -> Result<(), Error> {
    data.state.remove(None, key).map(|_| ()).map_err(other)
}

/// `increment`: the decimal integer stored under `key` (0 when absent) becomes `add(it)`.
fn increment<T>(data: &mut InstanceData, key: &str, add: impl Fn(T) -> Option<T>) -> Result<T, Error>
where
    T: std::str::FromStr + Default + std::fmt::Display + Copy,
{
    let now = match get(data, key)? {
        None => T::default(),
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|t| t.parse::<T>().ok())
            .ok_or_else(|| {
                Error::Other(format!(
                    "increment: the value of {key:?} is not a decimal integer of the delta's type"
                ))
            })?,
    };
    let next = add(now).ok_or_else(|| Error::Other(format!("increment: {key:?} would overflow")))?;
    set(data, key, next.to_string().as_bytes()).map(|()| next)
}

/// Up to `limit` keys of the bucket after `after` (a key) or past the first `skip`, in order.
fn list(ctx: &mut Ctx<'_>, after: Option<&str>, skip: usize, limit: usize) -> Result<Vec<String>, Error> {
    let keys = super::listing(ctx, |state| {
        state.list_keys(None, "", after, skip.saturating_add(limit))
    });
    Ok(keys.map_err(other)?.into_iter().skip(skip).collect())
}

/// Register the three interfaces of both drafts.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceData>) -> wasmtime::Result<()> {
    add_version(linker, DRAFT2)?;
    add_version(linker, DRAFT)
}

fn add_version(linker: &mut Linker<InstanceData>, version: &str) -> wasmtime::Result<()> {
    let draft2 = version == DRAFT2;
    let mut store = linker.instance(&format!("wasi:keyvalue/store@{version}"))?;
    store.resource("bucket", ResourceType::host::<Bucket>(), |_, _| Ok(()))?;
    store.func_wrap("open", |_: Ctx<'_>, (name,): (String,)| -> R<Resource<Bucket>> {
        if name == BUCKET {
            Ok((Ok(Resource::new_own(0)),))
        } else {
            Ok((Err(Error::Other(format!(
                "no bucket {name:?}: a Cairn operator's state is the bucket \"{BUCKET}\""
            ))),))
        }
    })?;
    store.func_wrap(
        "[method]bucket.get",
        |mut s: Ctx<'_>, (_, key): (Resource<Bucket>, String)| -> R<Option<Vec<u8>>> {
            Ok((get(s.data_mut(), &key),))
        },
    )?;
    store.func_wrap(
        "[method]bucket.set",
        |mut s: Ctx<'_>, (_, key, value): (Resource<Bucket>, String, Vec<u8>)| -> R<()> {
            Ok((set(s.data_mut(), &key, &value),))
        },
    )?;
    store.func_wrap(
        "[method]bucket.delete",
        |mut s: Ctx<'_>, (_, key): (Resource<Bucket>, String)| -> R<()> { Ok((delete(s.data_mut(), &key),)) },
    )?;
    store.func_wrap(
        "[method]bucket.exists",
        |mut s: Ctx<'_>, (_, key): (Resource<Bucket>, String)| -> R<bool> {
            Ok((s.data_mut().state.exists(None, &key).map_err(other),))
        },
    )?;
    if draft2 {
        store.func_wrap(
            "[method]bucket.list-keys",
            |mut s: Ctx<'_>, (_, cursor): (Resource<Bucket>, Option<String>)| -> R<KeyResponse> {
                let page = list(&mut s, cursor.as_deref(), 0, PAGE).map(|keys| {
                    let cursor = (keys.len() == PAGE).then(|| keys[PAGE - 1].clone());
                    KeyResponse { keys, cursor }
                });
                Ok((page,))
            },
        )?;
    } else {
        store.func_wrap(
            "[method]bucket.list-keys",
            |mut s: Ctx<'_>, (_, cursor): (Resource<Bucket>, Option<u64>)| -> R<KeyResponseU64> {
                let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
                let page = list(&mut s, None, skip, PAGE).map(|keys| {
                    let cursor = (keys.len() == PAGE).then(|| (skip + PAGE) as u64);
                    KeyResponseU64 { keys, cursor }
                });
                Ok((page,))
            },
        )?;
    }

    add_batch(&mut linker.instance(&format!("wasi:keyvalue/batch@{version}"))?)?;
    let mut atomics = linker.instance(&format!("wasi:keyvalue/atomics@{version}"))?;
    if !draft2 {
        atomics.func_wrap(
            "increment",
            |mut s: Ctx<'_>, (_, key, delta): (Resource<Bucket>, String, u64)| -> R<u64> {
                Ok((increment(s.data_mut(), &key, |n: u64| n.checked_add(delta)),))
            },
        )?;
        return Ok(());
    }
    atomics.resource("cas", ResourceType::host::<Cas>(), |mut s, rep| {
        s.data_mut().table.delete(Resource::<Cas>::new_own(rep))?;
        Ok(())
    })?;
    atomics.func_wrap(
        "increment",
        |mut s: Ctx<'_>, (_, key, delta): (Resource<Bucket>, String, i64)| -> R<i64> {
            Ok((increment(s.data_mut(), &key, |n: i64| n.checked_add(delta)),))
        },
    )?;
    atomics.func_wrap(
        "[static]cas.new",
        |mut s: Ctx<'_>, (_, key): (Resource<Bucket>, String)| -> R<Resource<Cas>> {
            let current = match get(s.data_mut(), &key) {
                Ok(c) => c,
                Err(e) => return Ok((Err(e),)),
            };
            let r = s.data_mut().table.push(Cas { key, current })?;
            Ok((Ok(r),))
        },
    )?;
    atomics.func_wrap(
        "[method]cas.current",
        |s: Ctx<'_>, (cas,): (Resource<Cas>,)| -> R<Option<Vec<u8>>> {
            Ok((Ok(s.data().table.get(&cas)?.current.clone()),))
        },
    )?;
    atomics.func_wrap(
        "swap",
        |mut s: Ctx<'_>,
         (cas, value): (Resource<Cas>, Vec<u8>)|
         -> wasmtime::Result<(Result<(), CasError>,)> {
            let (key, expected) = {
                let c = s.data().table.get(&cas)?;
                (c.key.clone(), c.current.clone())
            };
            let now = match get(s.data_mut(), &key) {
                Ok(now) => now,
                Err(e) => return Ok((Err(CasError::StoreError(e)),)),
            };
            if now != expected {
                // The handle goes back to the guest with the value now there.
                s.data_mut().table.get_mut(&cas)?.current = now;
                return Ok((Err(CasError::CasFailed(cas)),));
            }
            s.data_mut().table.delete(cas)?;
            Ok((set(s.data_mut(), &key, &value).map_err(CasError::StoreError),))
        },
    )?;

    Ok(())
}

/// `batch`, the same in both drafts.
fn add_batch(batch: &mut wasmtime::component::LinkerInstance<'_, InstanceData>) -> wasmtime::Result<()> {
    batch.func_wrap(
        "get-many",
        |mut s: Ctx<'_>, (_, keys): (Resource<Bucket>, Vec<String>)| -> R<Found> {
            let out = keys
                .into_iter()
                .map(|k| Ok(get(s.data_mut(), &k)?.map(|v| (k, v))))
                .collect();
            Ok((out,))
        },
    )?;
    batch.func_wrap(
        "set-many",
        |mut s: Ctx<'_>, (_, entries): (Resource<Bucket>, Vec<(String, Vec<u8>)>)| -> R<()> {
            for (k, v) in &entries {
                if let Err(e) = set(s.data_mut(), k, v) {
                    return Ok((Err(e),));
                }
            }
            Ok((Ok(()),))
        },
    )?;
    batch.func_wrap(
        "delete-many",
        |mut s: Ctx<'_>, (_, keys): (Resource<Bucket>, Vec<String>)| -> R<()> {
            for k in &keys {
                if let Err(e) = delete(s.data_mut(), k) {
                    return Ok((Err(e),));
                }
            }
            Ok((Ok(()),))
        },
    )?;
    Ok(())
}
