//! `cairn:operator@0.1.x`: state keys are plain strings, stored as they are (the core's plain
//! entries: operator-wide, no TTL), so checkpoints of 0.1 plugins keep restoring.
//! `get-inline`, the packed calls and `usage` came in 0.1.1.

use std::sync::Arc;

use cairn_codec::{Reader, state as packed};
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::{
    Ctx, HostFunc, InstanceData, Version, WitStateError, each, listing, lookup, malformed, usage,
    with_request, with_scoped,
};
use crate::state::{OperatorState, StateError, Value};

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

type I<'a, 'b> = &'a mut LinkerInstance<'b, InstanceData>;
type R = wasmtime::Result<()>;

/// Run `f` on the state with the plain key `key` copied out of guest memory.
fn with_key<T>(
    ctx: &mut Ctx<'_>,
    key: &WasmStr,
    f: impl FnOnce(&mut OperatorState, &str) -> T,
) -> wasmtime::Result<T> {
    with_scoped(ctx, &None, key, |state, _, k| f(state, k))
}

fn set_one(
    ctx: &mut Ctx<'_>,
    key: &WasmStr,
    value: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let value = Value::from(value.as_le_slice(&*ctx));
    with_key(ctx, key, |state, k| state.set_plain(k, value))
}

fn get_one(ctx: &mut Ctx<'_>, key: &WasmStr) -> wasmtime::Result<Option<Arc<[u8]>>> {
    with_key(ctx, key, |state, k| state.get_plain(k).map(Value::to_shared))
}

fn get(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key,): (WasmStr,)| {
        Ok((get_one(&mut ctx, &key)?,))
    })
}

fn get_inline(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key,): (WasmStr,)| {
        Ok((with_key(&mut ctx, &key, |state, k| lookup(state.get_plain(k)))?,))
    })
}

fn set(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key, value): (WasmStr, WasmList<u8>)| {
        Ok((set_one(&mut ctx, &key, &value)?.map_err(WitStateError::from),))
    })
}

fn remove(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key,): (WasmStr,)| {
        Ok((with_key(&mut ctx, &key, |state, k| state.remove_plain(k))?,))
    })
}

fn exists(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key,): (WasmStr,)| {
        Ok((with_key(&mut ctx, &key, |state, k| state.get_plain(k).is_some())?,))
    })
}

fn list_keys(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (prefix, after, limit): (WasmStr, Option<WasmStr>, u32)| {
            let prefix = prefix.to_str(&ctx)?.into_owned();
            let after = after
                .map(|a| a.to_str(&ctx).map(|a| a.into_owned()))
                .transpose()?;
            let keys = listing(&mut ctx, |state| {
                state.list_plain(&prefix, after.as_deref(), limit as usize)
            });
            Ok((keys,))
        },
    )
}

fn get_many(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (keys,): (WasmList<WasmStr>,)| {
        let mut out = Vec::with_capacity(keys.len());
        each(&mut ctx, &keys, |ctx, key| {
            out.push(get_one(ctx, &key)?);
            Ok(None::<()>)
        })?;
        Ok((out,))
    })
}

fn set_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (entries,): (WasmList<(WasmStr, WasmList<u8>)>,)| {
            let refused = each(&mut ctx, &entries, |ctx, (key, value)| {
                Ok(set_one(ctx, &key, &value)?.err())
            })?;
            Ok((refused.map_or(Ok(()), |e| Err(WitStateError::from(e))),))
        },
    )
}

fn remove_many(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (keys,): (WasmList<WasmStr>,)| {
        let mut removed = 0u32;
        each(&mut ctx, &keys, |ctx, key| {
            removed += u32::from(with_key(ctx, &key, |state, k| state.remove_plain(k))?);
            Ok(None::<()>)
        })?;
        Ok((removed,))
    })
}

/// 0.1.1's `get-many-packed` has no error channel: malformed input traps (as it always did).
fn get_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (keys,): (WasmList<u8>,)| {
        let answer = with_request(&mut ctx, &keys, |state, request| {
            let mut out = Vec::new();
            packed::read_plain_keys::<()>(request, |k| {
                packed::put_answer(&mut out, state.get_plain(k).map(|v| &**v));
                Ok(())
            })
            .map(|_| out)
        });
        Ok((answer.map_err(|e| wasmtime::Error::msg(format!("malformed packed state call: {e}")))?,))
    })
}

/// 0.1.1's `set-many-packed`: a u32 count, then per entry a key and a value (no removals).
/// Malformed input is refused as `invalid` before anything is stored.
fn set_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (entries,): (WasmList<u8>,)| {
        let result = with_request(&mut ctx, &entries, |state, request| {
            let parsed = (|| {
                let mut r = Reader::new(request);
                let count = r.count(8, "the entry count")?;
                let mut all = Vec::with_capacity(count);
                for _ in 0..count {
                    all.push((r.str("a key")?, r.bytes("a value")?));
                }
                r.finish("the last entry")?;
                Ok::<_, cairn_codec::Malformed>(all)
            })();
            let all = parsed.map_err(|e| malformed("packed state", e))?;
            for (k, v) in all {
                state.set_plain(k, Value::new(v))?;
            }
            Ok::<_, WitStateError>(())
        });
        Ok((result,))
    })
}

fn add_usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |ctx: Ctx<'_>, (): ()| Ok((usage(&ctx.data().state),)))
}
