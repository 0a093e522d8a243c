//! Numbers written as serde_json writes them, with a short path for the common case: a float
//! that is a decimal of at most three places (`89.5`, `1250.0`, `0.125`). serde_json finds the
//! shortest digits that read back as the float (its `zmij` algorithm), which in WebAssembly
//! costs 128-bit multiplications done in software; such a float's shortest digits are simply
//! its decimal, found with a few checks.

/// Decimal places the short path tries.
const SCALES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];

/// Write `x` into `out` exactly as `serde_json::to_writer(out, &x)` would: the shortest
/// decimal that reads back as `x` (`1.0`, `-0.5`, `1e16`), `null` when not finite.
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    if !short_decimal(out, x) {
        serde_json::to_writer(&mut *out, &x).expect("writing to a Vec cannot fail");
    }
}

/// [`write_f64`] for an optional number (`None` as `null`), as serde_json writes an
/// `Option<f64>`.
pub fn write_opt_f64(out: &mut Vec<u8>, x: Option<f64>) {
    match x {
        Some(x) => write_f64(out, x),
        None => out.extend_from_slice(b"null"),
    }
}

/// Write `x` if it is `n / 10^d` for an integer `n` and `d <= 3`, in the plain notation
/// serde_json uses for it; `false` (and nothing written) otherwise.
///
/// Why the digits are the shortest: `n as f64` is exact (|n| < 2^50) and the division is
/// correctly rounded, so `n / 10^d` read back is `x`. With |x| < 2^50 / 10^d, the floats near
/// `x` are less than `0.5 / 10^d` apart, so any other decimal of at most `d` places (at least
/// `1 / 10^d` away) reads back as another float: none with fewer digits names `x`. Plain
/// notation: serde_json switches to exponents only below 1e-5 or from 1e16.
fn short_decimal(out: &mut Vec<u8>, x: f64) -> bool {
    if x == 0.0 {
        out.extend_from_slice(if x.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return true;
    }
    let a = x.abs();
    if !(1e-3..1e12).contains(&a) {
        return false;
    }
    for (places, scale) in SCALES.iter().enumerate() {
        // (Ties to even: wasm's one-instruction rounding. An `x` that is a decimal of this
        // many places is within rounding error of an integer here, never halfway.)
        let n = (a * scale).round_ties_even();
        if n >= (1u64 << 50) as f64 {
            return false;
        }
        if n / scale == a && n != 0.0 {
            let n = n as u64;
            // Trailing zeros of the fraction come from a smaller scale, which was tried first.
            write_scaled(out, x < 0.0, n, places as u32);
            return true;
        }
    }
    false
}

/// `-`? then `n / 10^places` with at least one digit after the point. Digits are worked out
/// in `u32` where they fit: WebAssembly has no 64-bit multiply-high, so a `u64` division by 10
/// stays a division.
fn write_scaled(out: &mut Vec<u8>, negative: bool, n: u64, places: u32) {
    if negative {
        out.push(b'-');
    }
    let pow = 10u64.pow(places);
    let (int, frac) = (n / pow, (n % pow) as u32);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut push = |d: u32| {
        i -= 1;
        digits[i] = b'0' + d as u8;
    };
    match u32::try_from(int) {
        Ok(mut v) => loop {
            push(v % 10);
            v /= 10;
            if v == 0 {
                break;
            }
        },
        Err(_) => {
            let mut v = int;
            loop {
                push((v % 10) as u32);
                v /= 10;
                if v == 0 {
                    break;
                }
            }
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(b'.');
    if places == 0 {
        out.push(b'0');
        return;
    }
    let mut f = [0u8; 3];
    let mut v = frac;
    for d in f[..places as usize].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&f[..places as usize]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde(x: f64) -> Vec<u8> {
        serde_json::to_vec(&x).unwrap()
    }

    fn ours(x: f64) -> Vec<u8> {
        let mut out = b"[".to_vec();
        write_f64(&mut out, x);
        out.split_off(1)
    }

    #[test]
    fn agrees_with_serde_json_on_chosen_values() {
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            89.5,
            1250.0,
            0.125,
            0.001,
            0.0015,
            1e-3,
            9.999e11,
            1e12,
            1e15,
            1e16,
            1e-5,
            1e-7,
            0.1,
            0.2,
            0.3,
            0.1 + 0.2,
            123.456,
            2.5e-3,
            1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            51.166666666666664,
            4503599627370.495,
            1125899906842.625,
        ] {
            assert_eq!(
                String::from_utf8(ours(x)).unwrap(),
                String::from_utf8(serde(x)).unwrap(),
                "{x:?}"
            );
        }
        assert!(
            short_decimal(&mut Vec::new(), 89.5),
            "the short path takes one-place decimals"
        );
        assert!(!short_decimal(&mut Vec::new(), 0.1 + 0.2));
    }

    #[test]
    fn an_option_is_null_or_the_number() {
        for x in [None, Some(2.5), Some(f64::NAN)] {
            let mut out = Vec::new();
            write_opt_f64(&mut out, x);
            assert_eq!(out, serde_json::to_vec(&x).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_serde_json_on_decimals(n in -(1i64 << 40)..(1i64 << 40), places in 0u32..6) {
            let x = n as f64 / 10f64.powi(places as i32);
            prop_assert_eq!(ours(x), serde(x));
        }

        #[test]
        fn agrees_with_serde_json_on_any_float(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(ours(x), serde(x));
        }

        #[test]
        fn agrees_with_serde_json_near_the_bounds(m in 1u64..1_000_000, e in -8i32..18, places in 0i32..4) {
            let x = m as f64 * 10f64.powi(e) / 10f64.powi(places);
            prop_assert_eq!(ours(x), serde(x));
            prop_assert_eq!(ours(-x), serde(-x));
        }
    }
}
