//! `cairn:operator/pickled-state` (0.2.2): `bulk-state` with the entries pickled
//! (`cairn_codec::pickle`), for CPython guests, which read and write a pickle in one C call
//! where converting WIT values costs them thousands of instructions per value. Each entry is
//! one `state` call's worth of the core; malformed input is answered with
//! `state-error.invalid`, never a trap.

use cairn_codec::pickle::{Decoder, Writer};
use wasmtime::component::{LinkerInstance, WasmList};

use super::{Ctx, InstanceData, WitStateError, malformed, with_request};
use crate::state::Value;

type I<'a, 'b> = &'a mut LinkerInstance<'b, InstanceData>;
type R = wasmtime::Result<()>;

const PICKLED: &str = "pickled state";

pub(super) fn get_entries_pickled(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (names,): (WasmList<u8>,)| {
        let answer = with_request(&mut ctx, &names, |state, request| {
            let bad = |e| malformed(PICKLED, e);
            let mut d = Decoder::new(request, "the entries' names").map_err(bad)?;
            let mut out = Writer::new(request.len());
            while d.next_item().map_err(bad)? {
                let (scope, k) = (d.opt_str().map_err(bad)?, d.str().map_err(bad)?);
                d.end_tuple(2).map_err(bad)?;
                out.opt_bytes(state.get(scope, k)?.map(|v| &**v));
            }
            Ok::<_, WitStateError>(out.finish())
        });
        Ok((answer,))
    })
}

pub(super) fn write_entries_pickled(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut ctx: Ctx<'_>, (writes,): (WasmList<u8>,)| {
        let result = with_request(&mut ctx, &writes, |state, request| {
            let bad = |e| malformed(PICKLED, e);
            let mut d = Decoder::new(request, "the writes").map_err(bad)?;
            while d.next_item().map_err(bad)? {
                let (scope, k, value) = (
                    d.opt_str().map_err(bad)?,
                    d.str().map_err(bad)?,
                    d.opt_bytes().map_err(bad)?,
                );
                d.end_tuple(3).map_err(bad)?;
                match value {
                    Some(v) => state.set(scope, k, Value::new(v))?,
                    None => {
                        state.remove(scope, k)?;
                    }
                }
            }
            Ok::<_, WitStateError>(())
        });
        Ok((result,))
    })
}
