//! `cairn:operator/timers@0.2.0`: event-time timers of stream keys, kept by the state core
//! (checkpointed, rolled back and split by key group with the state); the runtime fires them
//! (`OperatorInstance::on_watermark`). `packed-timers` (0.2.4) registers many in one call and
//! tells the timer usage.

use cairn_codec::state as packed;
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

use super::{Ctx, InstanceData, WitStateError, malformed, refused, with_request, with_scoped};

type I<'a, 'b> = &'a mut LinkerInstance<'b, InstanceData>;
type R = wasmtime::Result<()>;

pub(super) fn register(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key, ts): (WasmStr, i64)| {
        let r = with_scoped(&mut ctx, &None, &key, |state, _, k| state.register_timer(k, ts))?;
        Ok((r.map_err(WitStateError::from),))
    })
}

/// `packed-timers.register-packed` (0.2.4): `register` for each timer of the buffer, in
/// order, after checking the whole buffer; stops at the first refusal.
pub(super) fn register_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (list,): (WasmList<u8>,)| {
        let result = with_request(&mut ctx, &list, |state, request| {
            let all = packed::read_timers(request).map_err(|e| malformed("packed timers", e))?;
            for (key, ts) in all {
                state.register_timer(key, ts)?;
            }
            Ok::<_, WitStateError>(())
        });
        Ok((result,))
    })
}

/// `packed-timers.usage` (0.2.4): timers registered and not fired, and `max-timers`.
pub(super) fn usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |ctx: Ctx<'_>, (): ()| Ok((ctx.data().state.timer_usage(),)))
}

pub(super) fn delete(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (key, ts): (WasmStr, i64)| {
        let r = with_scoped(&mut ctx, &None, &key, |state, _, k| state.delete_timer(k, ts))?;
        Ok((r.map_err(refused)?,))
    })
}

pub(super) fn current_watermark(i: I, name: &'static str) -> R {
    i.func_wrap(name, |ctx: Ctx<'_>, (): ()| Ok((ctx.data().state.watermark(),)))
}
