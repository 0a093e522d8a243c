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

    /// Handle one event, emitting any number of events into `out`.
    fn on_event(&mut self, event: Event, out: &mut Output) -> Result<(), Error>;

    /// Event time reached `watermark` (ms): no event with a smaller ts is expected any more.
    /// Close windows, expire partial matches. The default does nothing.
    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), Error> {
        let _ = (watermark, out);
        Ok(())
    }

    /// Handle a whole batch. The default calls [`Operator::on_event`] for each event; override
    /// it only to amortise work across a batch.
    fn on_batch(&mut self, batch: Vec<Event>, out: &mut Output) -> Result<(), Error> {
        for event in batch {
            self.on_event(event, out)?;
        }
        Ok(())
    }
}
