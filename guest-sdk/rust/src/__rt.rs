//! Glue between the generated bindings and [`crate::Operator`]; used by [`crate::export!`].

use std::cell::RefCell;

use crate::__bindings::cairn::operator::types::Event as WitEvent;
use crate::{Config, Event, Operator, Output, state};

fn from_wit(e: WitEvent) -> Event {
    Event {
        key: e.key,
        ts: e.ts,
        value: e.value,
    }
}

fn to_wit(e: Event) -> WitEvent {
    WitEvent {
        key: e.key,
        ts: e.ts,
        value: e.value,
    }
}

/// `init` export: build the operator and keep it for later calls.
pub fn init<T: Operator>(slot: &RefCell<Option<T>>, config: String) -> Result<(), String> {
    state::__reset_scope();
    state::__begin_call(false);
    let op = T::init(&Config::new(config)).map_err(|e| e.to_string())?;
    state::__end_call().map_err(|e| e.to_string())?;
    *slot.borrow_mut() = Some(op);
    Ok(())
}

/// Below this many events a batch's state calls go straight to the host: holding writes back
/// costs a few calls per batch, which only pays off over several events.
const CACHE_FROM_EVENTS: usize = 4;

fn run<T: Operator>(
    slot: &RefCell<Option<T>>,
    events: usize,
    f: impl FnOnce(&mut T, &mut Output) -> Result<(), crate::Error>,
) -> Result<Output, String> {
    let mut guard = slot.borrow_mut();
    let op = guard
        .as_mut()
        .ok_or_else(|| "operator called before init".to_string())?;
    let mut out = Output::new();
    // The call's state writes are held back and sent when it succeeds (see `state`).
    state::__reset_scope();
    state::__begin_call(events < CACHE_FROM_EVENTS);
    f(op, &mut out).map_err(|e| e.to_string())?;
    state::__end_call().map_err(|e| e.to_string())?;
    Ok(out)
}

fn with_op<T: Operator>(
    slot: &RefCell<Option<T>>,
    events: usize,
    f: impl FnOnce(&mut T, &mut Output) -> Result<(), crate::Error>,
) -> Result<Vec<WitEvent>, String> {
    Ok(run(slot, events, f)?.take().into_iter().map(to_wit).collect())
}

/// `process` export.
pub fn process<T: Operator>(
    slot: &RefCell<Option<T>>,
    batch: Vec<WitEvent>,
) -> Result<Vec<WitEvent>, String> {
    let n = batch.len();
    with_op(slot, n, |op, out| {
        op.on_batch(batch.into_iter().map(from_wit).collect(), out)
    })
}

/// `process-packed` export: `process` with the batch and the output in the packed encoding.
pub fn process_packed<T: Operator>(slot: &RefCell<Option<T>>, batch: Vec<u8>) -> Result<Vec<u8>, String> {
    let events = crate::packed::decode(&batch)?;
    drop(batch);
    let mut out = run(slot, events.len(), |op, out| op.on_batch(events, out))?;
    Ok(out.take_packed())
}

/// `on-watermark` export.
pub fn on_watermark<T: Operator>(slot: &RefCell<Option<T>>, watermark: i64) -> Result<Vec<WitEvent>, String> {
    // A watermark may close many windows: always worth the cache.
    with_op(slot, usize::MAX, |op, out| op.on_watermark(watermark, out))
}

/// `on-timers-packed` export: `on-timers` with the timers and the output in the packed
/// encoding (a timer is an event with an empty value).
pub fn on_timers_packed<T: Operator>(slot: &RefCell<Option<T>>, fired: Vec<u8>) -> Result<Vec<u8>, String> {
    let timers = crate::packed::decode(&fired)?;
    drop(fired);
    let mut out = run(slot, usize::MAX, |op, out| {
        crate::operator::fire_timers(op, &timers, out)
    })?;
    Ok(out.take_packed())
}

/// `on-timers` export: each timer in its key's scope.
pub fn on_timers<T: Operator>(
    slot: &RefCell<Option<T>>,
    fired: Vec<(String, i64)>,
) -> Result<Vec<WitEvent>, String> {
    let timers: Vec<Event> = fired
        .into_iter()
        .map(|(key, ts)| Event::new(key, ts, Vec::new()))
        .collect();
    with_op(slot, usize::MAX, |op, out| {
        crate::operator::fire_timers(op, &timers, out)
    })
}

/// `migration.migrate` export: each entry in its scope, one rewrite each, in order.
pub fn migrate<T: Operator>(
    slot: &RefCell<Option<T>>,
    from_version: u32,
    page: Vec<crate::migration::Entry>,
) -> Result<Vec<crate::migration::Rewrite>, String> {
    let mut rewrites = Vec::with_capacity(page.len());
    run(slot, usize::MAX, |op, _out| {
        for entry in &page {
            let _scope = match &entry.scope {
                Some(k) => state::enter_key(k),
                None => state::enter_operator(),
            };
            let r = op.migrate(from_version, entry).map_err(|e| {
                crate::Error::msg(format_args!(
                    "migrating key {:?} of scope {:?} from state version {from_version}: {e}",
                    entry.key, entry.scope
                ))
            })?;
            rewrites.push(r);
        }
        Ok(())
    })?;
    Ok(rewrites)
}

/// The `migration.migrate` export with the generated bindings' types.
#[cfg(target_arch = "wasm32")]
pub fn migrate_wit<T: Operator>(
    slot: &RefCell<Option<T>>,
    from_version: u32,
    page: Vec<crate::__bindings::exports::cairn::operator::migration::Entry>,
) -> Result<Vec<crate::__bindings::exports::cairn::operator::migration::Rewrite>, String> {
    use crate::__bindings::exports::cairn::operator::migration::Rewrite as W;
    let page = page
        .into_iter()
        .map(|e| crate::migration::Entry {
            scope: e.scope,
            key: e.key,
            value: e.value,
        })
        .collect();
    Ok(migrate(slot, from_version, page)?
        .into_iter()
        .map(|r| match r {
            crate::migration::Rewrite::Keep => W::Keep,
            crate::migration::Rewrite::Set(v) => W::Set(v),
            crate::migration::Rewrite::Remove => W::Remove,
        })
        .collect())
}

/// `s` as a byte array of its length (the declaration's section).
pub const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Refuse, when the plugin is compiled, a declaration the host would refuse when it loads it:
/// an empty name or one with whitespace, `=` or `,`.
pub const fn check_declared(payload: &str) {
    let b = payload.as_bytes();
    let mut i = 0;
    // "name=" then the name up to the newline.
    if b.len() > 5 && b[0] == b'n' && b[1] == b'a' && b[2] == b'm' && b[3] == b'e' && b[4] == b'=' {
        i = 5;
        assert!(b[i] != b'\n', "export!: the operator name is empty");
        while b[i] != b'\n' {
            let c = b[i];
            assert!(
                c > b' ' && c != b'=' && c != b',' && c != 0x7f,
                "export!: an operator name may not hold whitespace, control characters, `=` or `,`"
            );
            i += 1;
        }
    }
    let _ = i;
}
