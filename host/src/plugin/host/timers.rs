//! `cairn:operator/timers@0.2.0`: event-time timers, kept as state entries under keys no guest
//! can name (`cairn_codec::timers`), so that they are checkpointed, rolled back and split by
//! key group with the state. The runtime fires them (`OperatorInstance::on_watermark`).
//! `packed-timers` (0.2.4) registers many in one call and tells the timer usage.

use cairn_codec::{state as packed, timers};
use wasmtime::component::{LinkerInstance, WasmList, WasmStr};

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

/// Register the timer whose entry is `entry`.
fn register_entry(data: &mut StoreData, entry: &str) -> Result<(), WitStateError> {
    if !data.timers_enabled {
        return Err(WitStateError::Invalid(
            "timers need the `cairn:operator/timer-handler` export (`on-timers`), which this component lacks"
                .into(),
        ));
    }
    data.state
        .set_if_absent(entry, Value::new(&[]))
        .map_err(WitStateError::from)
}

pub(super) fn register(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (key, ts): (WasmStr, i64)| {
        Ok((with_entry(&mut store, &key, ts, register_entry)?,))
    })
}

/// `packed-timers.register-packed` (0.2.4): `register` for each timer of the buffer, in
/// order, after checking the whole buffer; stops at the first refusal.
pub(super) fn register_packed(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (list,): (WasmList<u8>,)| {
        let buf = super::request(&mut store, &list);
        let data = store.data_mut();
        let mut entry = std::mem::take(&mut data.key_buf);
        let result = packed::read_timers(&buf)
            .map_err(|e| WitStateError::Invalid(format!("malformed packed timers call: {e}")))
            .and_then(|all| {
                all.into_iter().try_for_each(|(key, ts)| {
                    entry.clear();
                    timers::entry_key_into(&mut entry, key, ts);
                    register_entry(data, &entry)
                })
            });
        data.blob_buf = buf;
        data.key_buf = entry;
        Ok((result,))
    })
}

/// `packed-timers.usage` (0.2.4): timers registered and not fired, and `max-timers`.
pub(super) fn usage(i: I, name: &'static str) -> R {
    i.func_wrap(name, |store: Store<'_>, (): ()| {
        let state = &store.data().state;
        Ok(((state.timers() as u64, state.quotas().max_timers),))
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
