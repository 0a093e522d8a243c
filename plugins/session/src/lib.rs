//! `session`: per key, sessions of activity separated by gaps, emitted when they close.
//!
//! Config: `{"gap_ms": 30000}`.
//!
//! * A session is a maximal run of a key's events whose consecutive `ts` differ by at most
//!   `gap_ms`. It closes when the host's watermark reaches `last_ts + gap_ms + 1` (a timer of
//!   its key fires then) and is emitted as `{"key": k, "ts": last_ts + gap_ms, "value":
//!   {"start": first_ts, "end": last_ts, "count": n}}`, then forgotten.
//! * An out-of-order event within `gap_ms` of an open session extends it; one within `gap_ms`
//!   of two open sessions merges them.
//! * An event whose own session would already have closed (`ts + gap_ms < watermark`) is
//!   dropped and counted (`late`, in its key's state).
//!
//! A key's open sessions are one entry of its scope (`sessions`, in start order), each with
//! its timer.

use cairn_sdk::{Config, Error, Event, Operator, Output, ValueState, timers};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    gap_ms: i64,
}

/// One open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// First event time.
    pub start: i64,
    /// Last event time.
    pub end: i64,
    /// Events in it.
    pub count: u64,
}

/// The operator.
pub struct Sessions {
    gap: i64,
}

fn open() -> ValueState<Vec<Session>> {
    ValueState::new("sessions")
}

/// Late events of the key being handled.
fn late() -> ValueState<u64> {
    ValueState::new("late")
}

impl Sessions {
    fn closes_at(&self, end: i64) -> i64 {
        end.saturating_add(self.gap).saturating_add(1)
    }
}

impl Operator for Sessions {
    fn init(config: &Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        if s.gap_ms < 0 {
            return Err(Error::msg("gap_ms must not be negative"));
        }
        Ok(Self { gap: s.gap_ms })
    }

    fn on_event(&mut self, event: Event, _out: &mut Output) -> Result<(), Error> {
        let ts = event.ts;
        if timers::watermark().is_some_and(|w| self.closes_at(ts) <= w) {
            late().update(|n| n.unwrap_or(0) + 1)?;
            return Ok(());
        }
        let mut sessions = open().get()?.unwrap_or_default();
        let mut merged = Session {
            start: ts,
            end: ts,
            count: 1,
        };
        let mut kept = Vec::with_capacity(sessions.len() + 1);
        for s in sessions.drain(..) {
            let touches = ts >= s.start.saturating_sub(self.gap) && ts <= s.end.saturating_add(self.gap);
            if touches {
                timers::delete(&event.key, self.closes_at(s.end));
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                merged.count += s.count;
            } else {
                kept.push(s);
            }
        }
        timers::register(&event.key, self.closes_at(merged.end))?;
        let at = kept.partition_point(|s| s.start < merged.start);
        kept.insert(at, merged);
        open().set(&kept)?;
        Ok(())
    }

    fn on_timer(&mut self, key: &str, ts: i64, out: &mut Output) -> Result<(), Error> {
        let mut sessions = open().get()?.unwrap_or_default();
        let Some(i) = sessions.iter().position(|s| self.closes_at(s.end) == ts) else {
            return Ok(());
        };
        let s = sessions.remove(i);
        out.emit_json(key, s.end.saturating_add(self.gap), &s)?;
        if sessions.is_empty() {
            open().clear();
        } else {
            open().set(&sessions)?;
        }
        Ok(())
    }
}

cairn_sdk::export!(Sessions);

#[cfg(test)]
mod tests;
