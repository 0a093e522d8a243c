//! Byte-string equality for the plugin-side state cache, which compares keys and scopes on
//! every lookup: in wasm, `==` on slices calls a byte-at-a-time `memcmp`.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// `a == b` for the short byte strings keys and scopes are: overlapping word loads per side up
/// to 32 bytes (no call into wasm's byte-wise `memcmp`), `==` beyond.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u64_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        // A window's or an id's key (`win/` and 20 digits): four loads, not a byte loop.
        17..=32 => {
            u64_at(a, 0) == u64_at(b, 0)
                && u64_at(a, 8) == u64_at(b, 8)
                && u64_at(a, n - 16) == u64_at(b, n - 16)
                && u64_at(a, n - 8) == u64_at(b, n - 8)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::same;

    proptest! {
        #[test]
        fn is_slice_equality(a in proptest::collection::vec(0u8..3, 0..40), flip in any::<prop::sample::Index>(), len_change in 0usize..3) {
            prop_assert!(same(&a, &a.clone()));
            let mut b = a.clone();
            if !b.is_empty() {
                let i = flip.index(b.len());
                b[i] ^= 1;
                prop_assert_eq!(same(&a, &b), a == b);
            }
            let mut c = a.clone();
            c.truncate(a.len().saturating_sub(len_change));
            prop_assert_eq!(same(&a, &c), a == c);
        }
    }
}
