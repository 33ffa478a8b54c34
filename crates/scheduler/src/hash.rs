//! A fast non-cryptographic hasher (the Fx algorithm rustc uses) for the scheduler's hot maps.
//!
//! It is not resistant to crafted collisions, so it is only used for keys users can't choose
//! freely at scale: node names and node label values (set by administrators and kubelets) and
//! per-node owner UIDs (bounded by the node's pod limit). Maps keyed by pod labels keep std's
//! randomly seeded SipHash.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x517c_c1b7_2722_0a95;

/// The Fx hasher state.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`FxHasher`]s.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;
/// A HashMap using [`FxHasher`].
pub type FastMap<K, V> = HashMap<K, V, FxBuildHasher>;
/// A HashSet using [`FxHasher`].
pub type FastSet<T> = HashSet<T, FxBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn distinguishes_strings_and_is_deterministic() {
        let h = |s: &str| FxBuildHasher::default().hash_one(s);
        assert_eq!(h("node-1"), h("node-1"));
        assert_ne!(h("node-1"), h("node-2"));
        let mut a = FxHasher::default();
        ("ab", "c").hash(&mut a);
        let mut b = FxHasher::default();
        ("a", "bc").hash(&mut b);
        assert_ne!(a.finish(), b.finish());
    }
}
