//! `cairn:operator@0.2.x`: every state entry has a scope (a stream key, or the operator-wide
//! scope) and is stored under its scoped key (`cairn_codec::scoped`). The clean `state`
//! interface names the scope in each call; the speed path `packed-state` takes scoped keys
//! directly. Malformed packed input is answered with `state-error.invalid`, never a trap.

use std::sync::Arc;

use cairn_codec::{scoped, state as packed};
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::{HostFunc, Lookup, Store, StoreData, Version, WitStateError, listing_done, lookup, ttl, usage};
use crate::state::{StateError, StateHolder, Value};

pub(super) const VERSION: Version = Version {
    version: "0.2.4",
    type_interfaces: &["types"],
    funcs: &[
        HostFunc {
            interface: "state",
            name: "get",
            add: get,
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
            interface: "log",
            name: "log",
            add: super::log::add,
        },
        HostFunc {
            interface: "packed-state",
            name: "get-inline",
            add: get_inline,
        },
        HostFunc {
            interface: "packed-state",
            name: "get-many-packed",
            add: get_many_packed,
        },
        HostFunc {
            interface: "packed-state",
            name: "write-many-packed",
            add: write_many_packed,
        },
        HostFunc {
            interface: "packed-state",
            name: "usage",
            add: add_usage,
        },
        HostFunc {
            interface: "packed-timers",
            name: "register-packed",
            add: super::timers::register_packed,
        },
        HostFunc {
            interface: "packed-timers",
            name: "usage",
            add: super::timers::usage,
        },
        HostFunc {
            interface: "bulk-state",
            name: "get-entries",
            add: super::bulk::get_entries,
        },
        HostFunc {
            interface: "bulk-state",
            name: "write-entries",
            add: super::bulk::write_entries,
        },
        HostFunc {
            interface: "pickled-state",
            name: "get-entries-pickled",
            add: super::pickled::get_entries_pickled,
        },
        HostFunc {
            interface: "pickled-state",
            name: "write-entries-pickled",
            add: super::pickled::write_entries_pickled,
        },
        HostFunc {
            interface: "timers",
            name: "register",
            add: super::timers::register,
        },
        HostFunc {
            interface: "timers",
            name: "delete",
            add: super::timers::delete,
        },
        HostFunc {
            interface: "timers",
            name: "current-watermark",
            add: super::timers::current_watermark,
        },
    ],
};

type I<'a, 'b> = &'a mut LinkerInstance<'b, StoreData>;
type R = wasmtime::Result<()>;
pub(super) type Scope = Option<WasmStr>;

/// Write the prefix of `scope` into `buf` (cleared first); returns its length.
fn scope_prefix(store: &Store<'_>, scope: &Scope, buf: &mut String) -> wasmtime::Result<usize> {
    buf.clear();
    match scope {
        None => scoped::prefix_into(buf, None),
        Some(s) => scoped::prefix_into(buf, Some(&s.to_str(store)?)),
    }
    Ok(buf.len())
}

/// Run `f` on the state with the scoped key of (`scope`, `key`) built in the reused buffer.
pub(super) fn with_key<T>(
    store: &mut Store<'_>,
    scope: &Scope,
    key: &WasmStr,
    f: impl FnOnce(&mut StoreData, &str) -> T,
) -> wasmtime::Result<T> {
    let mut buf = std::mem::take(&mut store.data_mut().key_buf);
    scope_prefix(store, scope, &mut buf)?;
    buf.push_str(&key.to_str(&*store)?);
    let data = store.data_mut();
    let r = f(data, &buf);
    data.key_buf = buf;
    Ok(r)
}

/// A read of `key`: absent when its scope expired (state TTL).
fn read<T>(data: &mut StoreData, key: &str, absent: T, f: impl FnOnce(&StateHolder, &str) -> T) -> T {
    if ttl::expired_key(data, key) {
        return absent;
    }
    f(&data.state, key)
}

/// A write of `key`, recorded for state TTL first (which clears an expired scope).
fn write<T>(
    data: &mut StoreData,
    key: &str,
    f: impl FnOnce(&mut StateHolder, &str) -> Result<T, StateError>,
) -> Result<T, StateError> {
    ttl::touch_key(data, key)?;
    f(&mut data.state, key)
}

pub(super) fn get_one(
    store: &mut Store<'_>,
    scope: &Scope,
    key: &WasmStr,
) -> wasmtime::Result<Option<Arc<[u8]>>> {
    with_key(store, scope, key, |d, k| {
        read(d, k, None, |s, k| s.get_value(k).map(Value::to_shared))
    })
}

pub(super) fn set_one(
    store: &mut Store<'_>,
    scope: &Scope,
    key: &WasmStr,
    value: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let value = Value::from(value.as_le_slice(&*store));
    with_key(store, scope, key, |d, k| write(d, k, |s, k| s.set(k, value)))
}

pub(super) fn remove_one(store: &mut Store<'_>, scope: &Scope, key: &WasmStr) -> wasmtime::Result<bool> {
    // A removal that cannot be recorded for TTL (a quota) still removes.
    with_key(store, scope, key, |d, k| {
        let _ = ttl::touch_key(d, k);
        d.state.remove(k)
    })
}

fn get(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((get_one(&mut store, &scope, &key)?,))
    })
}

fn get_inline(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((with_key(&mut store, &scope, &key, |d, k| {
            read(d, k, Lookup::Absent, |s, k| lookup(s.get_value(k)))
        })?,))
    })
}

fn set(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (scope, key, value): (Scope, WasmStr, WasmList<u8>)| {
            Ok((set_one(&mut store, &scope, &key, &value)?.map_err(WitStateError::from),))
        },
    )
}

fn remove(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((remove_one(&mut store, &scope, &key)?,))
    })
}

fn exists(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((with_key(&mut store, &scope, &key, |d, k| {
            read(d, k, false, |s, k| s.exists(k))
        })?,))
    })
}

fn list_keys(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (scope, prefix, after, limit): (Scope, WasmStr, Option<WasmStr>, u32)| {
            let had_index = store.data().state.has_ordered_index();
            let mut full = String::new();
            let n = scope_prefix(&store, &scope, &mut full)?;
            let mut after_full = full.clone();
            full.push_str(&prefix.to_str(&store)?);
            let after = match &after {
                Some(a) => {
                    after_full.push_str(&a.to_str(&store)?);
                    Some(after_full.as_str())
                }
                None => None,
            };
            let expired = ttl::expired_key(store.data_mut(), &full);
            let keys: Vec<String> = if expired {
                Vec::new()
            } else {
                store
                    .data()
                    .state
                    .list_keys(&full, after, limit as usize)
                    .iter()
                    .map(|k| k[n..].to_string())
                    .collect()
            };
            listing_done(&mut store, had_index);
            Ok((keys,))
        },
    )
}

fn get_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (scope, keys): (Scope, WasmList<WasmStr>)| {
            let mut out = Vec::with_capacity(keys.len());
            for n in 0..keys.len() {
                let Some(key) = keys.get(&mut store, n) else { break };
                out.push(get_one(&mut store, &scope, &key?)?);
            }
            Ok((out,))
        },
    )
}

fn set_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (scope, entries): (Scope, WasmList<(WasmStr, WasmList<u8>)>)| {
            for n in 0..entries.len() {
                let Some(entry) = entries.get(&mut store, n) else {
                    break;
                };
                let (key, value) = entry?;
                if let Err(e) = set_one(&mut store, &scope, &key, &value)? {
                    return Ok((Err(WitStateError::from(e)),));
                }
            }
            Ok((Ok(()),))
        },
    )
}

fn remove_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut store: Store<'_>, (scope, keys): (Scope, WasmList<WasmStr>)| {
            let mut removed = 0u32;
            for n in 0..keys.len() {
                let Some(key) = keys.get(&mut store, n) else { break };
                removed += u32::from(remove_one(&mut store, &scope, &key?)?);
            }
            Ok((removed,))
        },
    )
}

fn invalid(e: impl std::fmt::Display) -> WitStateError {
    WitStateError::Invalid(format!("malformed packed state call: {e}"))
}

fn get_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (keys,): (WasmList<u8>,)| {
        let mut key = std::mem::take(&mut store.data_mut().key_buf);
        let mut out = Vec::new();
        let r = if store.data().ttl_ms.is_none() {
            let state = &store.data().state;
            packed::read_keys::<()>(keys.as_le_slice(&store), |scope, k| {
                // Composed here from checked UTF-8: always a well-formed scoped key.
                key.clear();
                scoped::compose_into(&mut key, scope, k);
                packed::put_answer(&mut out, state.get(&key));
                Ok(())
            })
        } else {
            // With state TTL an entry of an expired scope reads as absent.
            let mut request = std::mem::take(&mut store.data_mut().blob_buf);
            request.clear();
            request.extend_from_slice(keys.as_le_slice(&store));
            let data = store.data_mut();
            let r = packed::read_keys::<()>(&request, |scope, k| {
                key.clear();
                scoped::compose_into(&mut key, scope, k);
                let value = if ttl::expired(data, scope) {
                    None
                } else {
                    data.state.get(&key)
                };
                packed::put_answer(&mut out, value);
                Ok(())
            });
            data.blob_buf = request;
            r
        };
        store.data_mut().key_buf = key;
        Ok((match r {
            Ok(_) => Ok(out),
            Err(e) => Err(invalid(e)),
        },))
    })
}

fn write_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (writes,): (WasmList<u8>,)| {
        let buf = super::request(&mut store, &writes);
        let data = store.data_mut();
        let mut key = std::mem::take(&mut data.key_buf);
        let result = (|| -> Result<(), WitStateError> {
            // Checked whole before anything is applied.
            let all = packed::read_writes(&buf).map_err(invalid)?;
            for w in all {
                key.clear();
                scoped::compose_into(&mut key, w.scope, w.key);
                match w.value {
                    Some(v) => {
                        ttl::touch(data, w.scope).map_err(WitStateError::from)?;
                        data.state.set(&key, Value::new(v)).map_err(WitStateError::from)?
                    }
                    None => {
                        let _ = ttl::touch(data, w.scope);
                        data.state.remove(&key);
                    }
                }
            }
            Ok(())
        })();
        let data = store.data_mut();
        data.blob_buf = buf;
        data.key_buf = key;
        Ok((result,))
    })
}

fn add_usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (): ()| Ok((usage(&store.data().state),)))
}
