//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`: what Spin 3 components import)
//! and `@0.2.0-draft` (wasmtime-wasi-keyvalue's: a u64 `list-keys` cursor, a u64 `increment`,
//! no `cas`), backed by the operator's state: bucket `default` is the operator-wide scope of
//! `cairn:operator/state`, with the same dirty tracking, quotas, transactions and checkpoints.
//! Other bucket names are refused. wasi:keyvalue knows no keys of events, so its entries are
//! never split between parallel instances. `increment` keeps the number as decimal text (as the
//! Cairn SDKs' counters do); a value that is not one is an error.

use cairn_codec::scoped;
use wasmtime::component::{ComponentType, Lift, Linker, Lower, Resource, ResourceType};

use super::{Store, StoreData};
use crate::state::Value;

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

/// The state key of `key` in the operator-wide scope.
fn full(key: &str) -> String {
    let mut k = String::new();
    scoped::prefix_into(&mut k, None);
    k.push_str(key);
    k
}

fn get(data: &StoreData, key: &str) -> Option<Vec<u8>> {
    data.state.get_value(&full(key)).map(|v| v.to_vec())
}

fn set(data: &mut StoreData, key: &str, value: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::Other("a key must not be empty".into()));
    }
    data.state
        .set(&full(key), Value::from(value))
        .map_err(|e| Error::Other(e.to_string()))
}

/// `increment`: the decimal integer stored under `key` (0 when absent) becomes `add(it)`.
fn increment<T>(data: &mut StoreData, key: &str, add: impl Fn(T) -> Option<T>) -> Result<T, Error>
where
    T: std::str::FromStr + Default + std::fmt::Display + Copy,
{
    let now = match get(data, key) {
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
fn list(s: &mut Store<'_>, after: Option<&str>, skip: usize, limit: usize) -> Vec<String> {
    let had_index = s.data().state.has_ordered_index();
    let prefix = full("");
    let after = after.map(full);
    let keys: Vec<String> = s
        .data()
        .state
        .list_keys(&prefix, after.as_deref(), skip.saturating_add(limit))
        .iter()
        .skip(skip)
        .map(|k| k[prefix.len()..].to_string())
        .collect();
    super::listing_done(s, had_index);
    keys
}

/// Register the three interfaces of both drafts.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    add_version(linker, DRAFT2)?;
    add_version(linker, DRAFT)
}

fn add_version(linker: &mut Linker<StoreData>, version: &str) -> wasmtime::Result<()> {
    let draft2 = version == DRAFT2;
    let mut store = linker.instance(&format!("wasi:keyvalue/store@{version}"))?;
    store.resource("bucket", ResourceType::host::<Bucket>(), |_, _| Ok(()))?;
    store.func_wrap(
        "open",
        |_: Store<'_>, (name,): (String,)| -> R<Resource<Bucket>> {
            if name == BUCKET {
                Ok((Ok(Resource::new_own(0)),))
            } else {
                Ok((Err(Error::Other(format!(
                    "no bucket {name:?}: a Cairn operator's state is the bucket \"{BUCKET}\""
                ))),))
            }
        },
    )?;
    store.func_wrap(
        "[method]bucket.get",
        |s: Store<'_>, (_, key): (Resource<Bucket>, String)| -> R<Option<Vec<u8>>> {
            Ok((Ok(get(s.data(), &key)),))
        },
    )?;
    store.func_wrap(
        "[method]bucket.set",
        |mut s: Store<'_>, (_, key, value): (Resource<Bucket>, String, Vec<u8>)| -> R<()> {
            Ok((set(s.data_mut(), &key, &value),))
        },
    )?;
    store.func_wrap(
        "[method]bucket.delete",
        |mut s: Store<'_>, (_, key): (Resource<Bucket>, String)| -> R<()> {
            s.data_mut().state.remove(&full(&key));
            Ok((Ok(()),))
        },
    )?;
    store.func_wrap(
        "[method]bucket.exists",
        |s: Store<'_>, (_, key): (Resource<Bucket>, String)| -> R<bool> {
            Ok((Ok(s.data().state.exists(&full(&key))),))
        },
    )?;
    if draft2 {
        store.func_wrap(
            "[method]bucket.list-keys",
            |mut s: Store<'_>, (_, cursor): (Resource<Bucket>, Option<String>)| -> R<KeyResponse> {
                let keys = list(&mut s, cursor.as_deref(), 0, PAGE);
                let cursor = (keys.len() == PAGE).then(|| keys[PAGE - 1].clone());
                Ok((Ok(KeyResponse { keys, cursor }),))
            },
        )?;
    } else {
        store.func_wrap(
            "[method]bucket.list-keys",
            |mut s: Store<'_>, (_, cursor): (Resource<Bucket>, Option<u64>)| -> R<KeyResponseU64> {
                let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
                let keys = list(&mut s, None, skip, PAGE);
                let cursor = (keys.len() == PAGE).then(|| (skip + PAGE) as u64);
                Ok((Ok(KeyResponseU64 { keys, cursor }),))
            },
        )?;
    }

    add_batch(&mut linker.instance(&format!("wasi:keyvalue/batch@{version}"))?)?;
    let mut atomics = linker.instance(&format!("wasi:keyvalue/atomics@{version}"))?;
    if !draft2 {
        atomics.func_wrap(
            "increment",
            |mut s: Store<'_>, (_, key, delta): (Resource<Bucket>, String, u64)| -> R<u64> {
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
        |mut s: Store<'_>, (_, key, delta): (Resource<Bucket>, String, i64)| -> R<i64> {
            Ok((increment(s.data_mut(), &key, |n: i64| n.checked_add(delta)),))
        },
    )?;
    atomics.func_wrap(
        "[static]cas.new",
        |mut s: Store<'_>, (_, key): (Resource<Bucket>, String)| -> R<Resource<Cas>> {
            let current = get(s.data(), &key);
            let r = s.data_mut().table.push(Cas { key, current })?;
            Ok((Ok(r),))
        },
    )?;
    atomics.func_wrap(
        "[method]cas.current",
        |s: Store<'_>, (cas,): (Resource<Cas>,)| -> R<Option<Vec<u8>>> {
            Ok((Ok(s.data().table.get(&cas)?.current.clone()),))
        },
    )?;
    atomics.func_wrap(
        "swap",
        |mut s: Store<'_>,
         (cas, value): (Resource<Cas>, Vec<u8>)|
         -> wasmtime::Result<(Result<(), CasError>,)> {
            let (key, expected) = {
                let c = s.data().table.get(&cas)?;
                (c.key.clone(), c.current.clone())
            };
            if get(s.data(), &key) != expected {
                // The handle goes back to the guest with the value now there.
                let now = get(s.data(), &key);
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
fn add_batch(batch: &mut wasmtime::component::LinkerInstance<'_, StoreData>) -> wasmtime::Result<()> {
    batch.func_wrap(
        "get-many",
        |s: Store<'_>, (_, keys): (Resource<Bucket>, Vec<String>)| -> R<Found> {
            let out = keys
                .into_iter()
                .map(|k| get(s.data(), &k).map(|v| (k, v)))
                .collect();
            Ok((Ok(out),))
        },
    )?;
    batch.func_wrap(
        "set-many",
        |mut s: Store<'_>, (_, entries): (Resource<Bucket>, Vec<(String, Vec<u8>)>)| -> R<()> {
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
        |mut s: Store<'_>, (_, keys): (Resource<Bucket>, Vec<String>)| -> R<()> {
            for k in &keys {
                s.data_mut().state.remove(&full(k));
            }
            Ok((Ok(()),))
        },
    )?;
    Ok(())
}
