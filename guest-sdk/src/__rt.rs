//! Glue between the generated bindings and [`crate::Operator`]; used by [`crate::export!`].

use std::cell::RefCell;

use crate::__bindings::cairn::operator::types::Event as WitEvent;
use crate::{Config, Event, Operator, Output};

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
    let op = T::init(&Config::new(config)).map_err(|e| e.to_string())?;
    *slot.borrow_mut() = Some(op);
    Ok(())
}

fn run<T: Operator>(
    slot: &RefCell<Option<T>>,
    f: impl FnOnce(&mut T, &mut Output) -> Result<(), crate::Error>,
) -> Result<Output, String> {
    let mut guard = slot.borrow_mut();
    let op = guard
        .as_mut()
        .ok_or_else(|| "operator called before init".to_string())?;
    let mut out = Output::new();
    f(op, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn with_op<T: Operator>(
    slot: &RefCell<Option<T>>,
    f: impl FnOnce(&mut T, &mut Output) -> Result<(), crate::Error>,
) -> Result<Vec<WitEvent>, String> {
    Ok(run(slot, f)?.take().into_iter().map(to_wit).collect())
}

/// `process` export.
pub fn process<T: Operator>(
    slot: &RefCell<Option<T>>,
    batch: Vec<WitEvent>,
) -> Result<Vec<WitEvent>, String> {
    with_op(slot, |op, out| {
        op.on_batch(batch.into_iter().map(from_wit).collect(), out)
    })
}

/// `process-packed` export: `process` with the batch and the output in the packed encoding.
pub fn process_packed<T: Operator>(slot: &RefCell<Option<T>>, batch: Vec<u8>) -> Result<Vec<u8>, String> {
    let events = crate::packed::decode(&batch)?;
    drop(batch);
    let out = run(slot, |op, out| op.on_batch(events, out))?;
    Ok(crate::packed::encode(out.events()))
}

/// `on-watermark` export.
pub fn on_watermark<T: Operator>(slot: &RefCell<Option<T>>, watermark: i64) -> Result<Vec<WitEvent>, String> {
    with_op(slot, |op, out| op.on_watermark(watermark, out))
}
