//! `cairn:operator/pickled-state` (0.2.2): `bulk-state` with the entries pickled
//! (`cairn_codec::pickle`), for CPython guests, which read and write a pickle in one C call
//! where converting WIT values costs them thousands of instructions per value. Each entry goes
//! through the same path as a `write-many-packed` entry (scoped key, TTL, quotas); malformed
//! input is answered with `state-error.invalid`, never a trap.

use cairn_codec::pickle::{Decoder, Writer};
use cairn_codec::{Malformed, scoped};
use wasmtime::component::{LinkerInstance, WasmList};

use super::{Store, StoreData, WitStateError, request, ttl};
use crate::state::Value;

type I<'a, 'b> = &'a mut LinkerInstance<'b, StoreData>;
type R = wasmtime::Result<()>;

fn invalid(e: Malformed) -> WitStateError {
    WitStateError::Invalid(format!("malformed pickled state call: {e}"))
}

pub(super) fn get_entries_pickled(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (names,): (WasmList<u8>,)| {
        let buf = request(&mut store, &names);
        let data = store.data_mut();
        let mut key = std::mem::take(&mut data.key_buf);
        let result = (|| -> Result<Vec<u8>, Malformed> {
            let mut d = Decoder::new(&buf, "the entries' names")?;
            let mut out = Writer::new(buf.len());
            while d.next_item()? {
                let (scope, k) = (d.opt_str()?, d.str()?);
                d.end_tuple(2)?;
                key.clear();
                scoped::compose_into(&mut key, scope, k);
                if ttl::expired(data, scope) {
                    out.none();
                } else {
                    out.opt_bytes(data.state.get(&key));
                }
            }
            Ok(out.finish())
        })();
        data.key_buf = key;
        data.blob_buf = buf;
        Ok((result.map_err(invalid),))
    })
}

pub(super) fn write_entries_pickled(i: I, name: &'static str) -> R {
    i.func_wrap(name, |mut store: Store<'_>, (writes,): (WasmList<u8>,)| {
        let buf = request(&mut store, &writes);
        let data = store.data_mut();
        let mut key = std::mem::take(&mut data.key_buf);
        let result = (|| -> Result<(), WitStateError> {
            let mut d = Decoder::new(&buf, "the writes").map_err(invalid)?;
            while d.next_item().map_err(invalid)? {
                let (scope, k, value) =
                    (|| Ok((d.opt_str()?, d.str()?, d.opt_bytes()?)))().map_err(invalid)?;
                d.end_tuple(3).map_err(invalid)?;
                key.clear();
                scoped::compose_into(&mut key, scope, k);
                match value {
                    Some(v) => {
                        ttl::touch(data, scope).map_err(WitStateError::from)?;
                        data.state.set(&key, Value::new(v)).map_err(WitStateError::from)?
                    }
                    None => {
                        // A removal that cannot be recorded for TTL (a quota) still removes.
                        let _ = ttl::touch(data, scope);
                        data.state.remove(&key);
                    }
                }
            }
            Ok(())
        })();
        data.key_buf = key;
        data.blob_buf = buf;
        Ok((result,))
    })
}
