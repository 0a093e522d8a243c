//! State TTL in event time for keyed scopes (`Limits::state_ttl`). A scope's last write is
//! recorded with the watermark in force (`cairn_codec::expiry`); once the watermark is `ttl`
//! past it, the scope reads as empty, a write first clears it, and the host removes its entries
//! at the next watermark step (ordinary deletes: deltas, checkpoints and restore stay exact).
//! Operator-wide entries never expire. With no TTL set nothing here runs.

use cairn_codec::{expiry, scoped};

use super::StoreData;
use crate::state::{StateError, StateHolder, Value};

/// The last-write watermark of `scope`: `None` when never recorded, `Some(None)` when written
/// before the first watermark.
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

/// Whether keyed `scope` is expired (its entries must read as absent).
pub(crate) fn expired(data: &mut StoreData, scope: Option<&str>) -> bool {
    let (Some(ttl), Some(scope)) = (data.ttl_ms, scope) else {
        return false;
    };
    let mut buf = std::mem::take(&mut data.ttl_buf);
    let w = written(&data.state, &mut buf, scope);
    data.ttl_buf = buf;
    is_expired(w, ttl, data.watermark)
}

/// The scope of a scoped key (`None` for operator-wide and unscoped keys).
fn scope_of(key: &str) -> Option<&str> {
    scoped::split(key).ok().and_then(|(s, _)| s)
}

/// Whether the scoped key `key` is in an expired scope (it must read as absent).
pub(crate) fn expired_key(data: &mut StoreData, key: &str) -> bool {
    data.ttl_ms.is_some() && expired(data, scope_of(key))
}

/// [`touch`] for the scope of the scoped key `key`.
pub(crate) fn touch_key(data: &mut StoreData, key: &str) -> Result<(), StateError> {
    if data.ttl_ms.is_none() {
        return Ok(());
    }
    touch(data, scope_of(key))
}

/// Before a write in keyed `scope`: clear it if it expired, and record the write.
pub(crate) fn touch(data: &mut StoreData, scope: Option<&str>) -> Result<(), StateError> {
    let (Some(ttl), Some(scope)) = (data.ttl_ms, scope) else {
        return Ok(());
    };
    let mut buf = std::mem::take(&mut data.ttl_buf);
    let w = written(&data.state, &mut buf, scope);
    data.ttl_buf = buf;
    let wm = data.watermark;
    if is_expired(w, ttl, wm) {
        let n = clear_scope(&mut data.state, scope);
        count_expired(data, n)?;
    } else if w == Some(wm) {
        return Ok(());
    }
    let new = w.is_none() || is_expired(w, ttl, wm);
    data.state.set(
        &expiry::written_key(scope),
        Value::from(expiry::encode_written(wm)),
    )?;
    if new && let Some(wm) = wm {
        data.state
            .set(&expiry::index_key(wm.saturating_add(ttl), scope), Value::new(&[]))?;
    }
    Ok(())
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

/// The watermark moved from `old` to `wm`: writes made before the first watermark count as
/// made at it, and every scope whose index entry is due is expired (or looked at again later
/// if it was written since). Returns how many entries expired.
pub(crate) fn advance(data: &mut StoreData, old: Option<i64>, wm: i64) -> Result<u64, StateError> {
    let Some(ttl) = data.ttl_ms else {
        return Ok(0);
    };
    let state = &mut data.state;
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
    count_expired(data, expired)?;
    Ok(expired)
}

/// Count `n` expired entries, in this run and in the state (`cairn checkpoints show`).
fn count_expired(data: &mut StoreData, n: u64) -> Result<(), StateError> {
    if n == 0 {
        return Ok(());
    }
    data.expired_keys += n;
    let state = &mut data.state;
    let before = state
        .get(expiry::EXPIRED_COUNT)
        .and_then(|v| v.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    state.set(expiry::EXPIRED_COUNT, Value::new(&(before + n).to_le_bytes()))
}
