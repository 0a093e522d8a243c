//! Whether bytes are exactly one JSON value: the check `serde_json::from_slice::<IgnoredAny>`
//! makes, in one pass without serde's machinery. Every input value and every emitted one is
//! checked, so this is on the path of every event.
//!
//! The grammar is serde_json's, to the byte: whitespace is space, tab, newline and carriage
//! return, before and after the value too; a string holds any byte but `"`, `\` and control
//! characters (serde_json checks UTF-8 only when it builds a string, not when it skips one),
//! and its escapes are `\" \\ \/ \b \f \n \r \t` and `\u` with four hex digits (surrogates
//! unchecked, as serde_json's skipping leaves them); numbers are
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` of any length; no trailing commas. serde
//! skips values without a depth limit; so does this (past 64 levels it hands over to serde).

/// Whether `v` is one JSON value, optionally surrounded by whitespace.
pub fn is_json(v: &[u8]) -> bool {
    match scan(v) {
        Ok(valid) => valid,
        Err(TooDeep) => serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok(),
    }
}

/// Nested deeper than the scanner's stack of 64 levels.
struct TooDeep;

/// Unwrap a step's result; `None` means the document is not JSON.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Some(i) => i,
            None => return Ok(false),
        }
    };
}

fn scan(v: &[u8]) -> Result<bool, TooDeep> {
    // The open arrays and objects, innermost in bit 0 (1: object), `depth` of them.
    let mut frames: u64 = 0;
    let mut depth = 0u32;
    let mut i = 0;
    'value: loop {
        i = ws(v, i);
        match *step!(v.get(i)) {
            open @ (b'{' | b'[') => {
                if depth == 64 {
                    return Err(TooDeep);
                }
                frames = (frames << 1) | u64::from(open == b'{');
                depth += 1;
                i = ws(v, i + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                // Empty: the loop below closes it. Else the first member follows.
                if v.get(i) != Some(&close) {
                    if open == b'{' {
                        i = step!(key(v, i));
                    }
                    continue 'value;
                }
            }
            b'"' => i = step!(string_end(v, i + 1)),
            b't' => i = step!(literal(v, i, b"true")),
            b'f' => i = step!(literal(v, i, b"false")),
            b'n' => i = step!(literal(v, i, b"null")),
            b'-' | b'0'..=b'9' => i = step!(number_end(v, i)),
            _ => return Ok(false),
        }
        // After a value: close what ends here, then a comma leads to the next member.
        loop {
            i = ws(v, i);
            if depth == 0 {
                return Ok(i == v.len());
            }
            let object = frames & 1 == 1;
            match v.get(i) {
                Some(b',') => {
                    i += 1;
                    if object {
                        i = step!(key(v, i));
                    }
                    continue 'value;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => return Ok(false),
            }
            i += 1;
            frames >>= 1;
            depth -= 1;
        }
    }
}

/// The index after JSON whitespace from `i` on.
fn ws(v: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = v.get(i) {
        i += 1;
    }
    i
}

/// An object member's key and colon from `i` (whitespace first): the index after the colon.
fn key(v: &[u8], i: usize) -> Option<usize> {
    let i = ws(v, i);
    if v.get(i) != Some(&b'"') {
        return None;
    }
    let i = ws(v, string_end(v, i + 1)?);
    (v.get(i) == Some(&b':')).then_some(i + 1)
}

/// The index after the string whose contents start at `i` (after its opening quote).
fn string_end(v: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *v.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                i += match *v.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if v.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                }
            }
            0..0x20 => return None,
            _ => i += 1,
        }
    }
}

fn literal(v: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    v[i..].starts_with(word).then_some(i + word.len())
}

/// The index after the number starting at `i`.
fn number_end(v: &[u8], i: usize) -> Option<usize> {
    let digits = |from: usize| {
        v.get(from..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let mut j = i + usize::from(v[i] == b'-');
    match *v.get(j)? {
        // (A digit after a leading zero cannot follow a value: the caller refuses it.)
        b'0' => j += 1,
        b'1'..=b'9' => j += digits(j),
        _ => return None,
    }
    if v.get(j) == Some(&b'.') {
        let n = digits(j + 1);
        if n == 0 {
            return None;
        }
        j += 1 + n;
    }
    if let Some(b'e' | b'E') = v.get(j) {
        j += 1;
        if let Some(b'+' | b'-') = v.get(j) {
            j += 1;
        }
        let n = digits(j);
        if n == 0 {
            return None;
        }
        j += n;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::is_json;

    fn serde_says(v: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok()
    }

    #[test]
    fn agrees_with_serde_on_the_edges() {
        let deep_ok = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        let deep_bad = format!("{}1{}", "[{\"a\":".repeat(100), "}]".repeat(99));
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"1",
            b" 1 ",
            b"-",
            b"-0",
            b"01",
            b"-01",
            b"1.",
            b"1.5",
            b".5",
            b"1e",
            b"1e+",
            b"1E-7",
            b"1.5e3x",
            b"true",
            b"tru",
            b"truex",
            b"nul",
            b"null ",
            b"\"\"",
            b"\"\\u12\"",
            b"\"\\u12G4\"",
            b"\"\\uD800\"",
            b"\"\\q\"",
            b"\"\x01\"",
            b"\"\x1f\"",
            b"\" \x7f\"",
            b"\"\xff\xfe\"",
            b"\"abc",
            b"[]",
            b"[ ]",
            b"[,]",
            b"[1,]",
            b"[1 2]",
            b"[1,2]",
            b"{}",
            b"{ }",
            b"{,}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\":1,\"b\":[{}]}",
            b"{1:2}",
            b"[}",
            b"{]",
            b"[[]",
            b"[]]",
            b"{\"a\":1}}",
            b"1 2",
            b"\t\n\r1",
            b"\x0c1",
            b"[1]\x00",
        ];
        for &c in cases {
            assert_eq!(is_json(c), serde_says(c), "{:?}", String::from_utf8_lossy(c));
        }
        assert!(is_json(deep_ok.as_bytes()));
        assert!(!is_json(deep_bad.as_bytes()));
        assert_eq!(is_json(deep_bad.as_bytes()), serde_says(deep_bad.as_bytes()));
    }

    /// JSON text with random whitespace, from serde_json's own writer.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a\"\\\\\\n\u{1}é/]{0,4}".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c]{0,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        (value, any::<bool>()).prop_map(|(v, pretty)| {
            if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                v.to_string()
            }
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_json_and_its_mutations(
            text in json_text(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b','), Just(b':'), Just(b'['), Just(b']'), Just(b'{'), Just(b'}'),
                Just(b'0'), Just(b'-'), Just(b'.'), Just(b'e'), Just(b' '), Just(b'u'), Just(b'\n'), any::<u8>(),
            ]), 0..3),
        ) {
            let mut bytes = text.into_bytes();
            for (at, op, b) in edits {
                let n = bytes.len();
                match op {
                    0 => bytes.insert(at.index(n + 1), b),
                    1 if n > 0 => { bytes.remove(at.index(n)); }
                    _ if n > 0 => bytes[at.index(n)] = b,
                    _ => {}
                }
            }
            prop_assert_eq!(is_json(&bytes), serde_says(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn agrees_with_serde_on_any_bytes(bytes in proptest::collection::vec(prop_oneof![
            Just(b'"'), Just(b'\\'), Just(b','), Just(b':'), Just(b'['), Just(b']'), Just(b'{'), Just(b'}'),
            Just(b'1'), Just(b'0'), Just(b'-'), Just(b'.'), Just(b'e'), Just(b' '), Just(b'u'), any::<u8>(),
        ], 0..12)) {
            prop_assert_eq!(is_json(&bytes), serde_says(&bytes));
        }
    }
}
