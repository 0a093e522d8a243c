//! `cairn:operator/timers@0.2.0`: event-time timers, kept as state entries under keys no guest
//! can name (`cairn_codec::timers`), so that they are checkpointed, rolled back and split by
//! key group with the state. The runtime fires them (`OperatorInstance::on_watermark`).

use cairn_codec::timers;
use wasmtime::component::{LinkerInstance, WasmStr};

use super::{Store, StoreData, WitStateError};
use crate::state::Value;

type I<'a, 'b> = &'a mut LinkerInstance<'b, StoreData>;
type R = wasmtime::Result<()>;

/// Build the entry of (`key`, `ts`) in the reused buffer and run `f` on it.
fn with_entry<T>(
    store: &mut Store<'_>,
    key: &WasmStr,
    ts: i64,
    f: impl FnOnce(&mut StoreData, &str) -> T,
) -> wasmtime::Result<T> {
    let mut buf = std::mem::take(&mut store.data_mut().key_buf);
    buf.clear();
    timers::entry_key_into(&mut buf, &key.to_str(&*store)?, ts);
    let data = store.data_mut();
    let r = f(data, &buf);
    data.key_buf = buf;
    Ok(r)
}

pub(super) fn register(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (key, ts): (WasmStr, i64)| {
        let r = with_entry(&mut store, &key, ts, |data, entry| {
            if !data.timers_enabled {
                return Err(WitStateError::Invalid(
                    "timers need the `cairn:operator/timer-handler` export (`on-timers`), which this component lacks"
                        .into(),
                ));
            }
            data.state
                .set_if_absent(entry, Value::new(&[]))
                .map_err(WitStateError::from)
        })?;
        Ok((r,))
    })
}

pub(super) fn delete(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (key, ts): (WasmStr, i64)| {
        Ok((with_entry(&mut store, &key, ts, |data, entry| {
            data.state.remove(entry)
        })?,))
    })
}

pub(super) fn current_watermark(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (): ()| Ok((store.data().watermark,)))
}
