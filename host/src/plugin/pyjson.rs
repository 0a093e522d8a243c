//! The JSON text of a Python value an operator emitted with `out.emit_json`: with WIT 0.2.2's
//! `process-pickled` the Python SDK hands the value over in CPython's `marshal` format
//! (version 2: one C call, a snapshot taken when the event is emitted), and the host writes it
//! exactly as the Rust SDK (serde_json) and the Python SDK's own writer write JSON: compact,
//! non-ASCII kept, floats in serde_json's shortest form, NaN and infinities as `null`, tuples
//! as arrays, dict keys that are int, float, bool or None as `json.dumps` writes them. A value
//! JSON cannot hold (bytes, a set, a complex number) is an error naming it.

use std::io::Write;

/// How deep values may nest (serde_json reads no deeper).
const MAX_DEPTH: usize = 128;

/// Append the JSON text of the marshalled value `m` to `out`; what is wrong, otherwise.
pub fn write(m: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut r = Reader(cairn_codec::Reader::new(m));
    r.value(out, 0)?;
    r.0.finish(WHAT).map_err(|e| e.to_string())
}

const WHAT: &str = "the marshalled value";

/// A bounds-checked cursor over the marshalled bytes (the guest's: untrusted).
struct Reader<'a>(cairn_codec::Reader<'a>);

fn scalar<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, v).expect("writing a scalar into memory cannot fail");
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        self.0.take(n, WHAT).map_err(|e| e.to_string())
    }

    /// The next byte, not read past.
    fn peek(&self) -> Option<u8> {
        self.0.clone().take(1, WHAT).ok().map(|b| b[0])
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.0.u32(WHAT).map_err(|e| e.to_string())? as i32)
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.i32()?).map_err(|_| format!("a negative length at byte {}", self.0.position()))
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.len()?;
        let at = self.0.position();
        std::str::from_utf8(self.take(n)?)
            .map_err(|_| format!("a str that is not UTF-8 (a lone surrogate?) at byte {at}"))
    }

    /// An int written as 15-bit digits (`l`).
    fn long(&mut self) -> Result<i128, String> {
        let n = self.i32()?;
        let mut v: i128 = 0;
        for i in 0..n.unsigned_abs() as usize {
            let b = self.take(2)?;
            let digit = i128::from(u16::from_le_bytes([b[0], b[1]]));
            let shifted = u32::try_from(15 * i)
                .ok()
                .and_then(|s| digit.checked_shl(s))
                .filter(|d| i < 9 && d >> (15 * i) == digit);
            v = shifted
                .and_then(|d| v.checked_add(d))
                .ok_or("an int beyond 128 bits is not written (JSON readers lose such ints)")?;
        }
        Ok(if n < 0 { -v } else { v })
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("a JSON value nested more than {MAX_DEPTH} deep"));
        }
        let at = self.0.position();
        match self.take(1)?[0] {
            b'N' => out.extend_from_slice(b"null"),
            b'T' => out.extend_from_slice(b"true"),
            b'F' => out.extend_from_slice(b"false"),
            b'i' => write!(out, "{}", self.i32()?).expect("in memory"),
            b'l' => write!(out, "{}", self.long()?).expect("in memory"),
            b'g' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                scalar(&f64::from_le_bytes(a), out);
            }
            b'u' | b't' => scalar(self.str()?, out),
            b'(' | b'[' => {
                let n = self.len()?;
                out.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(out, depth + 1)?;
                }
                out.push(b']');
            }
            b'{' => {
                out.push(b'{');
                let mut first = true;
                loop {
                    if self.peek() == Some(b'0') {
                        self.take(1)?;
                        break;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    self.key(out)?;
                    out.push(b':');
                    self.value(out, depth + 1)?;
                }
                out.push(b'}');
            }
            b's' => return Err("bytes inside a JSON value are not JSON serializable (decode them, or emit bytes with out.emit)".into()),
            b'<' | b'>' => return Err("a set is not JSON serializable (use a list)".into()),
            b'y' => return Err("a complex number is not JSON serializable".into()),
            op => return Err(format!("a value of marshal type {op:#04x} at byte {at} is not JSON serializable")),
        }
        Ok(())
    }

    /// A dict key: a str as it is; an int, float, bool or None as its JSON text, quoted.
    fn key(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        match self.peek() {
            Some(b'u' | b't') => self.value(out, 0),
            Some(b'i' | b'l' | b'g' | b'T' | b'F' | b'N') => {
                out.push(b'"');
                self.value(out, 0)?;
                out.push(b'"');
                Ok(())
            }
            _ => {
                Err("a dict key that is not a str, int, float, bool or None is not JSON serializable".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(m: &[u8]) -> Result<String, String> {
        let mut out = Vec::new();
        write(m, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn cpythons_marshalled_values_are_written_as_serde_json_writes_them() {
        assert_eq!(
            json(cairn_codec::golden::MARSHALLED_FROM_CPYTHON).unwrap(),
            "{\"count\":5,\"x\":[1.5,null,true,\"é\",[1,2]],\"big\":-1267650600228229401496703205376,\"7\":\"k\"}"
        );
        // Floats: serde_json's forms; NaN as null; a float key quoted.
        let mut m = vec![b'[', 3, 0, 0, 0];
        for f in [1e16, f64::NAN] {
            m.push(b'g');
            m.extend_from_slice(&f64::to_le_bytes(f));
        }
        m.extend_from_slice(b"{g");
        m.extend_from_slice(&0.5f64.to_le_bytes());
        m.extend_from_slice(b"N0");
        let f = |x: f64| serde_json::to_string(&x).unwrap();
        assert_eq!(
            json(&m).unwrap(),
            format!("[{},null,{{\"{}\":null}}]", f(1e16), f(0.5))
        );
    }

    #[test]
    fn what_json_cannot_hold_is_named_and_noise_is_an_error() {
        assert!(
            json(&[b'[', 1, 0, 0, 0, b's', 1, 0, 0, 0, b'x'])
                .unwrap_err()
                .contains("bytes")
        );
        assert!(json(&[b'<', 0, 0, 0, 0]).unwrap_err().contains("set"));
        assert!(
            json(&[b'{', b'(', 0, 0, 0, 0, b'N', b'0'])
                .unwrap_err()
                .contains("dict key")
        );
        assert!(json(&[b'l', 10, 0, 0, 0]).is_err());
        let mut deep = vec![];
        for _ in 0..200 {
            deep.extend_from_slice(&[b'[', 1, 0, 0, 0]);
        }
        deep.push(b'N');
        assert!(json(&deep).unwrap_err().contains("nested"));
        for cut in 0..cairn_codec::golden::MARSHALLED_FROM_CPYTHON.len() {
            assert!(json(&cairn_codec::golden::MARSHALLED_FROM_CPYTHON[..cut]).is_err());
        }
    }
}
