//! `cairn:operator/bulk-state` (0.2.1): many entries of many scopes per call, as WIT values.
//! For guests whose every call costs much (JavaScript), which can neither afford a call per
//! entry nor encode the packed layouts themselves at speed. Each entry is one `state` call's
//! worth of the core.

use std::sync::Arc;

use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::v0_2::{get_one, remove_one, set_one};
use super::{Ctx, InstanceData, Scope, WitStateError, each};

type I<'a, 'b> = &'a mut LinkerInstance<'b, InstanceData>;
type R = wasmtime::Result<()>;
type Name = (Scope, WasmStr);
type Write = (Scope, WasmStr, Option<WasmList<u8>>);

pub(super) fn get_entries(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (names,): (WasmList<Name>,)| {
        let mut out: Vec<Option<Arc<[u8]>>> = Vec::with_capacity(names.len());
        each(&mut ctx, &names, |ctx, (scope, key)| {
            out.push(get_one(ctx, &scope, &key)?);
            Ok(None::<()>)
        })?;
        Ok((out,))
    })
}

pub(super) fn write_entries(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (writes,): (WasmList<Write>,)| {
        let refused = each(&mut ctx, &writes, |ctx, (scope, key, value)| match value {
            Some(v) => Ok(set_one(ctx, &scope, &key, &v)?.err()),
            None => remove_one(ctx, &scope, &key).map(|_| None),
        })?;
        Ok((refused.map_or(Ok(()), |e| Err(WitStateError::from(e))),))
    })
}
