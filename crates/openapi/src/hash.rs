//! A stable content hash for the `?hash=` of OpenAPI v3 documents.
//!
//! Clients only compare it with what the root document advertises (and cache by it), so any
//! deterministic function of the bytes does; two FNV-1a passes with different offsets give
//! 128 bits, plenty to tell document versions apart.

/// Uppercase hex of a 128-bit FNV-1a-style hash of `bytes`.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
        b = (b ^ u64::from(byte.rotate_left(3))).wrapping_mul(PRIME);
    }
    // Fold the length in so documents that differ only by trailing zero bytes differ.
    b ^= bytes.len() as u64;
    format!("{a:016X}{b:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        assert_eq!(content_hash(b"abc"), content_hash(b"abc"));
        assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
        let h = content_hash(b"");
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }
}
