//! `cairn:operator@0.2.x`: every state entry has a scope (a stream key, or the operator-wide
//! scope). The clean `state` interface names the scope in each call; the speed path
//! `packed-state` carries (scope, key) pairs in one buffer (`cairn_codec::state`). Each
//! function decodes, calls the state core and encodes; malformed packed input is answered
//! with `state-error.invalid`, never a trap.

use std::sync::Arc;

use cairn_codec::state as packed;
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::{
    Ctx, HostFunc, InstanceData, Scope, Version, WitStateError, each, listing, lookup, malformed, refused,
    usage, with_request, with_scoped,
};
use crate::state::{StateError, Value};

pub(super) const VERSION: Version = Version {
    version: cairn_codec::CONTRACT_VERSION,
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

type I<'a, 'b> = &'a mut LinkerInstance<'b, InstanceData>;
type R = wasmtime::Result<()>;

/// `get` of one entry (also `bulk-state`'s): a refusal fails the call.
pub(super) fn get_one(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    key: &WasmStr,
) -> wasmtime::Result<Option<Arc<[u8]>>> {
    with_scoped(ctx, scope, key, |state, s, k| {
        state.get(s, k).map(|v| v.map(Value::to_shared))
    })?
    .map_err(refused)
}

/// `set` of one entry (also `bulk-state`'s).
pub(super) fn set_one(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    key: &WasmStr,
    value: &WasmList<u8>,
) -> wasmtime::Result<Result<(), StateError>> {
    let value = Value::from(value.as_le_slice(&*ctx));
    with_scoped(ctx, scope, key, |state, s, k| state.set(s, k, value))
}

/// `remove` of one entry (also `bulk-state`'s): a refusal fails the call.
pub(super) fn remove_one(ctx: &mut Ctx<'_>, scope: &Scope, key: &WasmStr) -> wasmtime::Result<bool> {
    with_scoped(ctx, scope, key, |state, s, k| state.remove(s, k))?.map_err(refused)
}

fn get(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((get_one(&mut ctx, &scope, &key)?,))
    })
}

fn get_inline(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (scope, key): (Scope, WasmStr)| {
        let found = with_scoped(&mut ctx, &scope, &key, |state, s, k| state.get(s, k).map(lookup))?;
        Ok((found.map_err(refused)?,))
    })
}

fn set(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (scope, key, value): (Scope, WasmStr, WasmList<u8>)| {
            Ok((set_one(&mut ctx, &scope, &key, &value)?.map_err(WitStateError::from),))
        },
    )
}

fn remove(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((remove_one(&mut ctx, &scope, &key)?,))
    })
}

fn exists(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (scope, key): (Scope, WasmStr)| {
        Ok((with_scoped(&mut ctx, &scope, &key, |state, s, k| state.exists(s, k))?.map_err(refused)?,))
    })
}

fn list_keys(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (scope, prefix, after, limit): (Scope, WasmStr, Option<WasmStr>, u32)| {
            let owned = |s: &WasmStr| s.to_str(&ctx).map(|s| s.into_owned());
            let (scope, prefix) = (scope.as_ref().map(owned).transpose()?, owned(&prefix)?);
            let after = after.as_ref().map(owned).transpose()?;
            let listed = listing(&mut ctx, |state| {
                state.list_keys(scope.as_deref(), &prefix, after.as_deref(), limit as usize)
            });
            Ok((listed.map_err(refused)?,))
        },
    )
}

fn get_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (scope, keys): (Scope, WasmList<WasmStr>)| {
            let mut out = Vec::with_capacity(keys.len());
            each(&mut ctx, &keys, |ctx, key| {
                out.push(get_one(ctx, &scope, &key)?);
                Ok(None::<()>)
            })?;
            Ok((out,))
        },
    )
}

fn set_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (scope, entries): (Scope, WasmList<(WasmStr, WasmList<u8>)>)| {
            let refused = each(&mut ctx, &entries, |ctx, (key, value)| {
                Ok(set_one(ctx, &scope, &key, &value)?.err())
            })?;
            Ok((refused.map_or(Ok(()), |e| Err(WitStateError::from(e))),))
        },
    )
}

fn remove_many(i: I, name: &'static str) -> R {
    i.func_wrap(
        name,
        |mut ctx: Ctx<'_>, (scope, keys): (Scope, WasmList<WasmStr>)| {
            let mut removed = 0u32;
            each(&mut ctx, &keys, |ctx, key| {
                removed += u32::from(remove_one(ctx, &scope, &key)?);
                Ok(None::<()>)
            })?;
            Ok((removed,))
        },
    )
}

const PACKED: &str = "packed state";

fn get_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (keys,): (WasmList<u8>,)| {
        let answer = with_request(&mut ctx, &keys, |state, request| {
            let mut out = Vec::new();
            let read = packed::read_keys(request, |scope, k| {
                let value = state.get(scope, k)?;
                packed::put_answer(&mut out, value.map(|v| &**v));
                Ok::<_, StateError>(())
            });
            match read {
                Ok(Ok(())) => Ok(out),
                Ok(Err(refusal)) => Err(WitStateError::from(refusal)),
                Err(e) => Err(malformed(PACKED, e)),
            }
        });
        Ok((answer,))
    })
}

fn write_many_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (writes,): (WasmList<u8>,)| {
        let result = with_request(&mut ctx, &writes, |state, request| {
            // Checked whole before anything is applied.
            let all = packed::read_writes(request).map_err(|e| malformed(PACKED, e))?;
            for w in all {
                match w.value {
                    Some(v) => state.set(w.scope, w.key, Value::new(v))?,
                    None => {
                        state.remove(w.scope, w.key)?;
                    }
                }
            }
            Ok::<_, WitStateError>(())
        });
        Ok((result,))
    })
}

fn add_usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |ctx: Ctx<'_>, (): ()| Ok((usage(&ctx.data().state),)))
}
