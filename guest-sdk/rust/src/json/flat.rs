//! The common case of [`super::value_in`] read by a byte scanner instead of serde: a flat
//! object — one level, keys and string values of plain ASCII without escapes, numbers short
//! decimals without exponent, `true`, `false`, `null` — such as `{"temp": 89.5, "id": "a7"}`.
//!
//! The scanner accepts only documents that it can check completely and whose every number is
//! one `serde_json` reads without error, so that what it finds is what parsing the whole
//! document finds. Anything else (nesting, escapes, non-ASCII text, long numbers, exponents,
//! trailing commas, a malformed document) it hands back to the general path, which gives the
//! value or the very error `serde_json` gives.

/// Significant digits at most in a number the scanner takes: well inside what an f64 holds,
/// so `serde_json` never fails on it.
const MAX_DIGITS: usize = 15;

/// The raw text of the value of top-level field `name` in the flat object `json` (the last
/// one if the name repeats), `Some(None)` if the object has no such field; `None` if `json`
/// is not a document this scanner reads (take the general path).
pub(super) fn field_in<'j>(json: &'j [u8], name: &str) -> Option<Option<&'j [u8]>> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    let mut found = None;
    if json.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let key_end = plain_string(json, i)?;
            let key = &json[i + 1..key_end - 1];
            i = skip_ws(json, key_end);
            if json.get(i) != Some(&b':') {
                return None;
            }
            let start = skip_ws(json, i + 1);
            let end = scalar(json, start)?;
            if crate::state::bytes::same(key, name.as_bytes()) {
                found = Some(&json[start..end]);
            }
            i = skip_ws(json, end);
            match json.get(i) {
                Some(b',') => i = skip_ws(json, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(json, i) == json.len()).then_some(found)
}

/// The value of a scalar [`field_in`] found, as `serde_json` reads it: a string as it is, an
/// integer as `u64` or `i64` (`-0` as the float `-0.0`), a decimal as `f64` — of at most
/// [`MAX_DIGITS`] digits, so `serde_json`'s division by a power of ten and `str::parse` both
/// give the correctly rounded double.
pub(super) fn scalar_value(raw: &[u8]) -> serde_json::Value {
    use serde_json::Value;
    let text = || cairn_codec::utf8(raw).expect("the scanner took ASCII only");
    match raw[0] {
        b'"' => Value::String(text()[1..raw.len() - 1].to_string()),
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Null,
        _ if raw.contains(&b'.') => Value::from(text().parse::<f64>().expect("a checked decimal")),
        b'-' => match text().parse::<i64>().expect("at most 15 digits") {
            0 => Value::from(-0.0),
            n => Value::from(n),
        },
        _ => Value::from(text().parse::<u64>().expect("at most 15 digits")),
    }
}

/// The index after JSON whitespace from `i` on.
fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = json.get(i) {
        i += 1;
    }
    i
}

/// The index after the plain string (printable ASCII, no escape) starting at `i`.
fn plain_string(json: &[u8], i: usize) -> Option<usize> {
    if json.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match *json.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' | 0..0x20 | 0x80.. => return None,
            _ => j += 1,
        }
    }
}

/// The index after the scalar starting at `i` (a plain string, a short decimal number,
/// `true`, `false` or `null`).
fn scalar(json: &[u8], i: usize) -> Option<usize> {
    let rest = json.get(i..)?;
    match rest.first()? {
        b'"' => plain_string(json, i),
        b't' if rest.starts_with(b"true") => Some(i + 4),
        b'f' if rest.starts_with(b"false") => Some(i + 5),
        b'n' if rest.starts_with(b"null") => Some(i + 4),
        _ => number(json, i),
    }
}

/// The index after the number `-?(0|[1-9][0-9]*)(\.[0-9]+)?` starting at `i`, if it has at
/// most [`MAX_DIGITS`] digits. (What follows is the caller's to check: an exponent or a
/// leading zero's next digit then fails there.)
fn number(json: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(json.get(i) == Some(&b'-'));
    let digits = |from: usize| json[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int = match json.get(j)? {
        b'0' => 1,
        b'1'..=b'9' => digits(j),
        _ => return None,
    };
    j += int;
    let mut frac = 0;
    if json.get(j) == Some(&b'.') {
        frac = digits(j + 1);
        if frac == 0 {
            return None;
        }
        j += 1 + frac;
    }
    (int + frac <= MAX_DIGITS).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::field_in;

    #[test]
    fn reads_flat_objects_and_declines_the_rest() {
        let f = |j: &str, n: &str| {
            field_in(j.as_bytes(), n).map(|v| v.map(|v| String::from_utf8(v.to_vec()).unwrap()))
        };
        assert_eq!(f(r#"{"temp":89.5}"#, "temp"), Some(Some("89.5".into())));
        assert_eq!(
            f(r#" { "a" : "x" , "temp" : -0.25 , "a" : null } "#, "a"),
            Some(Some("null".into()))
        );
        assert_eq!(f(r#"{"a":true,"b":false}"#, "c"), Some(None));
        assert_eq!(f("{}", "c"), Some(None));
        // Declined: the general path decides.
        for doc in [
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":"\n"}"#,
            r#"{"a\"":1}"#,
            r#"{"a":"é"}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1234567890123456}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            "[1]",
            "",
        ] {
            assert_eq!(f(doc, "a"), None, "{doc}");
        }
        // A number with more digits than an f64 reaches is an error for serde_json.
        let huge = format!(r#"{{"a":1{}}}"#, "0".repeat(400));
        assert!(serde_json::from_str::<serde_json::Value>(&huge).is_err());
        assert_eq!(f(&huge, "a"), None);
    }
}
