//! The text of dedup's entries read and written without serde where it is in the form this
//! operator writes (checked against serde in the tests): lists of ids, and times.

use cairn_sdk::json;

/// `list` (a JSON list of strings, as serde_json writes it: `["a","b"]`) with `id` appended,
/// into `out`; `None` if `list` is not of that form.
pub(crate) fn appended(list: Option<&[u8]>, id: &str, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    match list {
        None => out.push(b'['),
        Some(l) if l.len() >= 2 && l[0] == b'[' && l[l.len() - 1] == b']' => {
            out.extend_from_slice(&l[..l.len() - 1]);
            if l.len() > 2 {
                out.push(b',');
            }
        }
        Some(_) => return None,
    }
    serde_json::to_writer(&mut *out, id).ok()?;
    out.push(b']');
    Some(())
}

/// The text between a list's brackets when it is a list of ids as this operator writes it
/// (`["7","\"a\""]`) and none of them holds a backslash (each id's JSON text is then the id
/// between quotes, and quotes are only the list's own); `None` for anything else, which is
/// read as JSON instead. Its ids: [`ids_in`].
pub(crate) fn plain_list(list: &[u8]) -> Option<&str> {
    let inner = list.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = json::utf8(inner).ok()?;
    if inner.is_empty() {
        return Some(inner);
    }
    // `"a","b","c"`: quotes only at the ends and around each `,` between ids, no backslash.
    let b = inner.as_bytes();
    let end = b.len().checked_sub(1)?;
    if end == 0 || b[0] != b'"' || b[end] != b'"' {
        return None;
    }
    let mut i = 1;
    while i < end {
        match b[i] {
            b'\\' => return None,
            b'"' if b[i + 1] == b',' && i + 2 < end && b[i + 2] == b'"' => i += 3,
            b'"' => return None,
            _ => i += 1,
        }
    }
    Some(inner)
}

/// The ids of a list's text as [`plain_list`] gives it.
pub(crate) fn ids_in(inner: &str) -> impl Iterator<Item = &str> {
    let body = (!inner.is_empty()).then(|| &inner[1..inner.len() - 1]);
    body.into_iter().flat_map(|b| b.split('"').step_by(2))
}

/// `-`? then 1 to 18 digits, no leading zero, not `-0`: an integer as serde_json writes it.
pub(crate) fn plain_i64(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    // (serde_json reads `-0` as a float: declined too.)
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}

/// `list` (the JSON text of a list of strings) without `id`, as serde_json writes the list,
/// into `out` (cleared first); whether any id remains. Fails as serde would on a list that is
/// not one of strings.
pub(crate) fn without(list: &[u8], id: &str, out: &mut Vec<u8>) -> Result<bool, serde_json::Error> {
    fn push(out: &mut Vec<u8>, first: &mut bool, x: &str) -> Result<(), serde_json::Error> {
        if !std::mem::take(first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, x)
    }
    out.clear();
    out.push(b'[');
    let mut first = true;
    match plain_list(list) {
        Some(inner) => {
            for x in ids_in(inner).filter(|&x| x != id) {
                push(out, &mut first, x)?;
            }
        }
        None => {
            for x in serde_json::from_slice::<Vec<String>>(list)?
                .iter()
                .filter(|&x| x != id)
            {
                push(out, &mut first, x)?;
            }
        }
    }
    out.push(b']');
    Ok(!first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_appended_as_serde_writes_the_list() {
        let ids = ["7", "\"a\\\"b\"", "x%2Fy", "é", ""];
        for n in 0..ids.len() {
            let list: Vec<String> = ids[..n].iter().map(|s| s.to_string()).collect();
            let stored = (n > 0).then(|| serde_json::to_vec(&list).unwrap());
            let mut out = Vec::new();
            appended(stored.as_deref(), ids[n], &mut out).unwrap();
            let mut want = list.clone();
            want.push(ids[n].to_string());
            assert_eq!(out, serde_json::to_vec(&want).unwrap());
        }
        assert_eq!(
            appended(Some(b"{}"), "1", &mut Vec::new()),
            None,
            "not a list: read as JSON"
        );
    }

    /// Every run `ids[n..m]` as a list, with its JSON text as serde_json writes it.
    fn lists(ids: &[&str]) -> Vec<(Vec<String>, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 0..ids.len() {
            for m in n..=ids.len() {
                let list: Vec<String> = ids[n..m].iter().map(|s| s.to_string()).collect();
                let text = serde_json::to_vec(&list).unwrap();
                out.push((list, text));
            }
        }
        out
    }

    #[test]
    fn plain_id_lists_are_read_as_serde_reads_them() {
        for (list, text) in lists(&["7", "89.5", "", "x%2Fy", "é", "a\"b", "back\\slash", "tab\t"]) {
            match plain_list(&text) {
                Some(inner) => assert_eq!(ids_in(inner).collect::<Vec<_>>(), list),
                None => assert!(
                    list.iter().any(|id| id.contains(['"', '\\', '\t'])),
                    "{list:?} declined"
                ),
            }
        }
        for other in [
            &b"{}"[..],
            b"[1]",
            b"[\"a\",2]",
            b" [\"a\"]",
            b"[\"a\"",
            b"[\"a\"]]",
            b"[\"a\",]",
            b"[\"a\",\"]",
            b"[\"a\" ,\"b\"]",
            b"[\"\"\"]",
        ] {
            assert_eq!(plain_list(other), None, "{other:?}");
        }
    }

    #[test]
    fn an_id_is_taken_off_a_list_as_serde_writes_the_rest() {
        let ids = ["7", "89.5", "", "x%2Fy", "é", "a\"b", "back\\slash", "7"];
        for (list, text) in lists(&ids) {
            for id in ids {
                let mut out = b"stale".to_vec();
                let left = without(&text, id, &mut out).unwrap();
                let want: Vec<&String> = list.iter().filter(|x| *x != id).collect();
                assert_eq!(out, serde_json::to_vec(&want).unwrap(), "{list:?} without {id:?}");
                assert_eq!(left, !want.is_empty());
            }
        }
        assert!(
            without(b"{}", "1", &mut Vec::new()).is_err(),
            "not a list: serde's error"
        );
    }

    #[test]
    fn plain_integers_are_read_as_serde_reads_them() {
        // What this operator writes is read without serde...
        for n in [0i64, 1, -1, 7, 1_700_000_000_000, -999_999_999_999_999_999] {
            assert_eq!(plain_i64(n.to_string().as_bytes()), Some(n));
        }
        // ... and nothing is read otherwise than serde reads it (declined: serde reads it).
        for text in [
            "-0",
            "01",
            "",
            "-",
            "1.0",
            "1e3",
            " 1",
            "+1",
            "12a",
            "\"5\"",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
        ] {
            if let Some(v) = plain_i64(text.as_bytes()) {
                assert_eq!(Some(v), serde_json::from_str::<i64>(text).ok(), "{text:?}");
            }
        }
    }
}
