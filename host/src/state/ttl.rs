//! State TTL in event time for keyed scopes (`Limits::state_ttl`), as rules of
//! [`OperatorState`]. A scope's last write is recorded (`cairn_codec::expiry`) with its stamp:
//! the newest event time of the scope's stream key in the writing batch, or the watermark if
//! later (writes outside a batch's `process`: the watermark). Once the watermark is `ttl` past
//! it, the scope reads as empty, a write first clears it, and its entries are removed at the
//! next watermark step (ordinary deletes: deltas, checkpoints and restore stay exact).
//! Operator-wide entries never expire. With no TTL set nothing here runs.

use cairn_codec::{expiry, scoped};

use super::{OperatorState, StateError, StateHolder, Value};

/// The last-write stamp of `scope`: `None` when never recorded, `Some(None)` when written
/// before anything stamped it (it then counts as written at the first watermark).
fn written(state: &StateHolder, buf: &mut String, scope: &str) -> Option<Option<i64>> {
    buf.clear();
    buf.push_str(expiry::WRITTEN_PREFIX);
    buf.push_str(scope);
    // A malformed record (not written by this host) counts as never recorded.
    state.get(buf).and_then(expiry::decode_written)
}

fn is_expired(w: Option<Option<i64>>, ttl: i64, watermark: Option<i64>) -> bool {
    matches!((w, watermark), (Some(Some(w)), Some(wm)) if wm >= w.saturating_add(ttl))
}

impl OperatorState {
    /// Whether keyed `scope` is expired (its entries read as absent).
    #[inline]
    pub(super) fn expired_scope(&mut self, scope: Option<&str>) -> bool {
        let (Some(ttl), Some(scope)) = (self.ttl_ms, scope) else {
            return false;
        };
        let w = written(&self.holder, &mut self.aux, scope);
        is_expired(w, ttl, self.watermark)
    }

    /// Before a write in keyed `scope`: clear it if it expired, and record the write's stamp.
    #[inline]
    pub(super) fn touch(&mut self, scope: Option<&str>) -> Result<(), StateError> {
        let (Some(ttl), Some(scope)) = (self.ttl_ms, scope) else {
            return Ok(());
        };
        let w = written(&self.holder, &mut self.aux, scope);
        let wm = self.watermark;
        let stamp = self.batch_times.stamp(scope, wm);
        let expired = is_expired(w, ttl, wm);
        if expired {
            let n = clear_scope(&mut self.holder, scope);
            self.count_expired(n)?;
        } else if let Some(Some(prev)) = w
            && stamp.is_none_or(|s| s <= prev)
        {
            // Stamped as late already (a later event of the key came in an earlier batch).
            return Ok(());
        } else if w == Some(stamp) {
            return Ok(());
        }
        // An index entry exists (or a look at it will add one) for a record that had a time.
        let indexed = matches!(w, Some(Some(_))) && !expired;
        self.holder.set(
            &expiry::written_key(scope),
            Value::from(expiry::encode_written(stamp)),
        )?;
        if !indexed && let Some(s) = stamp {
            self.holder
                .set(&expiry::index_key(s.saturating_add(ttl), scope), Value::new(&[]))?;
        }
        Ok(())
    }

    /// Event time reached `wm`: writes stamped before the first watermark count as made at it,
    /// and every scope whose index entry is due is expired (or looked at again later if it was
    /// written since). Returns how many entries expired.
    pub fn advance_watermark(&mut self, wm: i64) -> Result<u64, StateError> {
        let old = self.watermark.replace(wm);
        let Some(ttl) = self.ttl_ms else {
            return Ok(0);
        };
        let state = &mut self.holder;
        if old.is_none() {
            let first: Vec<String> = state
                .list_keys(expiry::WRITTEN_PREFIX, None, usize::MAX)
                .iter()
                .filter(|k| state.get(k).is_some_and(<[u8]>::is_empty))
                .map(|k| k[expiry::WRITTEN_PREFIX.len()..].to_string())
                .collect();
            for scope in first {
                state.set(
                    &expiry::written_key(&scope),
                    Value::from(expiry::encode_written(Some(wm))),
                )?;
                state.set(
                    &expiry::index_key(wm.saturating_add(ttl), &scope),
                    Value::new(&[]),
                )?;
            }
        }
        let bound = expiry::index_after(wm);
        let mut expired = 0;
        loop {
            let due: Vec<(i64, String)> = state
                .list_keys(expiry::INDEX_PREFIX, None, 1024)
                .into_iter()
                .take_while(|k| **k < *bound)
                .filter_map(|k| expiry::parse_index(&k).map(|(ts, s)| (ts, s.to_string())))
                .collect();
            if due.is_empty() {
                break;
            }
            for (ts, scope) in due {
                state.remove(&expiry::index_key(ts, &scope));
                let mut buf = String::new();
                match written(state, &mut buf, &scope) {
                    Some(Some(w)) if wm < w.saturating_add(ttl) => {
                        // Written since: look again when it can expire.
                        state.set(&expiry::index_key(w.saturating_add(ttl), &scope), Value::new(&[]))?;
                    }
                    Some(_) => expired += clear_scope(state, &scope),
                    None => {}
                }
            }
        }
        self.count_expired(expired)?;
        Ok(expired)
    }

    /// Count `n` expired entries (a checkpoint records the sum over the instances: `cairn
    /// checkpoints show`).
    fn count_expired(&mut self, n: u64) -> Result<(), StateError> {
        self.expired += n;
        Ok(())
    }
}

/// Remove every entry of `scope` and its TTL records; returns how many entries it held.
fn clear_scope(state: &mut StateHolder, scope: &str) -> u64 {
    let prefix = scoped::compose(Some(scope), "");
    let mut n = 0;
    loop {
        let keys = state.list_keys(&prefix, None, 1024);
        if keys.is_empty() {
            break;
        }
        for k in &keys {
            n += u64::from(state.remove(k));
        }
    }
    state.remove(&expiry::written_key(scope));
    n
}
