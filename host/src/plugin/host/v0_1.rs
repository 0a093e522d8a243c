//! `cairn:operator@0.1.x`: state keys are plain strings, stored as they are, so checkpoints of
//! 0.1 plugins keep restoring. `get-inline`, the packed calls and `usage` came in 0.1.1.

use std::sync::Arc;

use cairn_codec::{Reader, state as packed};
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::{HostFunc, Store, StoreData, Version, WitStateError, listing_done, lookup, read_into, usage};
use crate::state::{Key, StateError, StateHolder, Value};

pub(super) const VERSION: Version = Version {
    version: "0.1.1",
    type_interfaces: &["types"],
    funcs: &[
        HostFunc {
            interface: "state",
            name: "get",
            add: get,
        },
        HostFunc {
            interface: "state",
            name: "get-inline",
            add: get_inline,
        },
        HostFunc {
            interface: "state",
            name: "set",
            add: set,
        },
        HostFunc {
            interface: "state",
            name: "remove",
            add: remove,
        },
        HostFunc {
            interface: "state",
            name: "exists",
            add: exists,
        },
        HostFunc {
            interface: "state",
            name: "list-keys",
            add: list_keys,
        },
        HostFunc {
            interface: "state",
            name: "get-many",
            add: get_many,
        },
        HostFunc {
            interface: "state",
            name: "set-many",
            add: set_many,
        },
        HostFunc {
            interface: "state",
            name: "remove-many",
            add: remove_many,
        },
        HostFunc {
            interface: "state",
            name: "get-many-packed",
            add: get_many_packed,
        },
        HostFunc {
            interface: "state",
            name: "set-many-packed",
            add: set_many_packed,
        },
        HostFunc {
            interface: "state",
            name: "usage",
            add: add_usage,
        },
        HostFunc {
            interface: "log",
            name: "log",
            add: super::log::add,
        },
    ],
};

type I<'a, 'b> = &'a mut LinkerInstance<'b, StoreData>;
type R = wasmtime::Result<()>;

/// Run `f` on the state with `key` copied out of guest memory into the reused key buffer.
fn with_key<T>(
    store: &mut Store<'_>,
    key: &WasmStr,
    f: impl FnOnce(&mut StateHolder, &str) -> T,
) -> wasmtime::Result<T> {
    let mut buf = std::mem::take(&mut store.data_mut().key_buf);
    read_into(store, key, &mut buf)?;
    let data = store.data_mut();
    let r = f(&mut data.state, &buf);
    data.key_buf = buf;
    Ok(r)
}

fn set_one(
    store: &mut Store<'_>,
    key: &WasmStr,
    value: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let value = Value::from(value.as_le_slice(&*store));
    with_key(store, key, |state, k| state.set(k, value))
}

fn get_one(store: &Store<'_>, key: &WasmStr) -> wasmtime::Result<Option<Arc<[u8]>>> {
    let k = key.to_str(store)?;
    Ok(store.data().state.get_value(&k).map(Value::to_shared))
}

fn get(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (key,): (WasmStr,)| {
        Ok((get_one(&store, &key)?,))
    })
}

fn get_inline(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (key,): (WasmStr,)| {
        let k = key.to_str(&store)?;
        Ok((lookup(store.data().state.get_value(&k)),))
    })
}

fn set(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (key, value): (WasmStr, WasmList<u8>)| {
            Ok((set_one(&mut store, &key, &value)?.map_err(WitStateError::from),))
        },
    )
}

fn remove(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (key,): (WasmStr,)| {
        Ok((with_key(&mut store, &key, |s, k| s.remove(k))?,))
    })
}

fn exists(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (key,): (WasmStr,)| {
        let k = key.to_str(&store)?;
        Ok((store.data().state.exists(&k),))
    })
}

fn list_keys(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (prefix, after, limit): (WasmStr, Option<WasmStr>, u32)| {
            let had_index = store.data().state.has_ordered_index();
            let keys: Vec<Key> = {
                let prefix = prefix.to_str(&store)?;
                let after = after.as_ref().map(|a| a.to_str(&store)).transpose()?;
                store
                    .data()
                    .state
                    .list_keys(&prefix, after.as_deref(), limit as usize)
            };
            listing_done(&mut store, had_index);
            Ok((keys.iter().map(|k| k.to_string()).collect::<Vec<String>>(),))
        },
    )
}

fn get_many(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (keys,): (WasmList<WasmStr>,)| {
        let mut out = Vec::with_capacity(keys.len());
        for n in 0..keys.len() {
            let Some(key) = keys.get(&mut store, n) else { break };
            out.push(get_one(&store, &key?)?);
        }
        Ok((out,))
    })
}

fn set_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (entries,): (WasmList<(WasmStr, WasmList<u8>)>,)| {
            for n in 0..entries.len() {
                let Some(entry) = entries.get(&mut store, n) else {
                    break;
                };
                let (key, value) = entry?;
                if let Err(e) = set_one(&mut store, &key, &value)? {
                    return Ok((Err(WitStateError::from(e)),));
                }
            }
            Ok((Ok(()),))
        },
    )
}

fn remove_many(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (keys,): (WasmList<WasmStr>,)| {
        let mut removed = 0u32;
        for n in 0..keys.len() {
            let Some(key) = keys.get(&mut store, n) else { break };
            removed += u32::from(with_key(&mut store, &key?, |s, k| s.remove(k))?);
        }
        Ok((removed,))
    })
}

/// 0.1.1's `get-many-packed` has no error channel: malformed input traps (as it always did).
fn get_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (keys,): (WasmList<u8>,)| {
        let state = &store.data().state;
        let mut out = Vec::new();
        packed::read_plain_keys::<()>(keys.as_le_slice(&store), |k| {
            packed::put_answer(&mut out, state.get(k));
            Ok(())
        })
        .map_err(|e| wasmtime::Error::msg(format!("malformed packed state call: {e}")))?
        .ok();
        Ok((out,))
    })
}

/// 0.1.1's `set-many-packed`: a u32 count, then per entry a key and a value (no removals).
/// Malformed input is refused as `invalid` before anything is stored.
fn set_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (entries,): (WasmList<u8>,)| {
        let mut buf = std::mem::take(&mut store.data_mut().blob_buf);
        buf.clear();
        buf.extend_from_slice(entries.as_le_slice(&store));
        let parsed = (|| {
            let mut r = Reader::new(&buf);
            let count = r.count(8, "the entry count")?;
            let mut all = Vec::with_capacity(count);
            for _ in 0..count {
                all.push((r.str("a key")?, r.bytes("a value")?));
            }
            r.finish("the last entry")?;
            Ok::<_, cairn_codec::Malformed>(all)
        })();
        let state = &mut store.data_mut().state;
        let result = match parsed {
            Err(e) => Err(WitStateError::Invalid(format!(
                "malformed packed state call: {e}"
            ))),
            Ok(all) => all
                .into_iter()
                .try_for_each(|(k, v)| state.set(k, Value::new(v)))
                .map_err(WitStateError::from),
        };
        store.data_mut().blob_buf = buf;
        Ok((result,))
    })
}

fn add_usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (): ()| Ok((usage(&store.data().state),)))
}
