use crate::migration::{Entry, Rewrite};
use crate::{Config, Error, Event, Output};

/// A stream operator. The host calls [`Operator::init`] once per instance (again after a
/// restore), then [`Operator::on_event`] for every event in order, and
/// [`Operator::on_watermark`] when event time advances.
///
/// Keep everything that must survive a crash in [`crate::state`]; the host checkpoints it.
/// An error fails the whole batch: the host rolls its state writes back.
pub trait Operator: Sized + 'static {
    /// Build the operator from its configuration.
    fn init(config: &Config) -> Result<Self, Error>;

    /// Handle one event, emitting any number of events into `out`. State calls work in the
    /// scope of `event.key` (see [`crate::state`]).
    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error>;

    /// Event time reached `watermark` (ms): no event with a smaller ts is expected any more.
    /// Close windows, expire partial matches. The default does nothing.
    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), Error> {
        let _ = (watermark, out);
        Ok(())
    }

    /// A timer registered with [`crate::timers::register`] came due: the watermark reached
    /// `ts`. Runs in `key`'s scope, before [`Operator::on_watermark`]. The default does
    /// nothing.
    fn on_timer(&mut self, key: &str, ts: i64, out: &mut Output) -> Result<(), Error> {
        let _ = (key, ts, out);
        Ok(())
    }

    /// Called with each batch before its events are handled: the place to read the state
    /// the batch will need in one call ([`crate::state::prefetch`]). The default does nothing.
    fn before_batch(&mut self, batch: &[Event]) -> Result<(), Error> {
        let _ = batch;
        Ok(())
    }

    /// Called with the timers that came due in one call, in (ts, key) order, before
    /// [`Operator::on_timer`] runs for each (a timer is an event with an empty value): the
    /// place to read the state they will need in one call ([`crate::state::prefetch`]). The
    /// default does nothing.
    fn before_timers(&mut self, timers: &[Event]) -> Result<(), Error> {
        let _ = timers;
        Ok(())
    }

    /// Rewrite one entry of state written under the older state version `from_version`
    /// (see [`crate::migration`]). Runs in the entry's scope, after [`Operator::init`], before
    /// any event; state calls made here apply too. The default refuses, so that a plugin that
    /// declares a new state version without saying how old state reads cannot resume from it.
    fn migrate(&mut self, from_version: u32, entry: &Entry) -> Result<Rewrite, Error> {
        let _ = entry;
        Err(Error::msg(format_args!(
            "this operator declares a new state version but does not migrate state of version \
             {from_version}: implement Operator::migrate"
        )))
    }

    /// Handle a whole batch. The default calls [`Operator::before_batch`], then
    /// [`Operator::on_event`] for each event in its key's scope. Override it only to work on
    /// the batch as a whole; state calls then work in the operator-wide scope unless you enter
    /// a key's ([`crate::state::enter_key`]).
    fn on_batch(&mut self, batch: Vec<Event>, out: &mut Output) -> Result<(), Error> {
        self.before_batch(&batch)?;
        for event in batch {
            let _scope = crate::state::enter_key(&event.key);
            self.on_event(event, out)?;
        }
        Ok(())
    }
}

/// Fire `timers` (one call's due timers, in (ts, key) order) as the host does:
/// [`Operator::before_timers`] with all of them, then [`Operator::on_timer`] for each in its
/// key's scope. Used by the timer exports and by the testing harness alike.
pub(crate) fn fire_timers<T: Operator>(op: &mut T, timers: &[Event], out: &mut Output) -> Result<(), Error> {
    op.before_timers(timers)?;
    for t in timers {
        let _scope = crate::state::enter_key(&t.key);
        op.on_timer(&t.key, t.ts, out)?;
    }
    Ok(())
}
