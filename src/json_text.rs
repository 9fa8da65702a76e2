//! JSON string text (RFC 8259 §7): where a run of bytes a JSON string may hold as they are (no
//! quotation mark, reverse solidus or control character below U+0020) ends, found eight bytes
//! at a time. The validation layer's parser and the audit layer's writer both scan for it.

/// `b` repeated in every byte of a word.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Whether byte `b` ends a plain run.
#[inline]
pub(crate) fn stops(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The index of the first byte of `s` at or after `from` that ends a plain run, or `s.len()`.
#[inline]
pub(crate) fn plain_until(s: &[u8], mut from: usize) -> usize {
    const HIGH: u64 = splat(0x80);
    while let Some(&chunk) = s.get(from..).and_then(|rest| rest.first_chunk::<8>()) {
        let w = u64::from_le_bytes(chunk);
        let (quote, solidus) = (w ^ splat(b'"'), w ^ splat(b'\\'));
        // A byte is flagged when it is zero (after the xor) or below 0x20. Borrows can flag
        // bytes above a flagged one, never below: the lowest flag is exact.
        let hits = (quote.wrapping_sub(splat(1)) & !quote)
            | (solidus.wrapping_sub(splat(1)) & !solidus)
            | (w.wrapping_sub(splat(0x20)) & !w);
        let hits = hits & HIGH;
        if hits != 0 {
            return from + (hits.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < s.len() && !stops(s[from]) {
        from += 1;
    }
    from
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bytewise(s: &[u8], from: usize) -> usize {
        (from..s.len()).find(|&i| stops(s[i])).unwrap_or(s.len())
    }

    #[test]
    fn every_stop_byte_at_every_offset() {
        for stop in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..20 {
                let mut s = vec![b'a'; 20];
                s[at] = stop;
                assert_eq!(plain_until(&s, 0), at, "{stop:#x} at {at}");
            }
        }
        // Bytes next to the stops, and UTF-8 continuation bytes, are plain.
        let plain: Vec<u8> = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff].repeat(3);
        assert_eq!(plain_until(&plain, 0), plain.len());
    }

    proptest! {
        #[test]
        fn matches_the_bytewise_definition(
            s in proptest::collection::vec(
                prop_oneof![
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    6 => 0x20u8..=0xff,
                    6 => Just(b'a'),
                ],
                0..64,
            ),
            from in 0usize..70,
        ) {
            let from = from.min(s.len());
            prop_assert_eq!(plain_until(&s, from), bytewise(&s, from));
        }
    }
}
