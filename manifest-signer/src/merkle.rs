//! The append-only Merkle log over every segment of a stream (RFC 9162 tree shape, BLAKE3),
//! with inclusion proofs (a segment is in the archive) and consistency proofs (a newer root
//! extends an older one).

use serde::{Deserialize, Serialize};

use crate::canonical::to_canonical;
use crate::objects::SegmentRef;
use crate::{Error, Hash, Result};

/// One log leaf: a segment and the rendition it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub rendition: String,
    #[serde(flatten)]
    pub segment: SegmentRef,
}

impl LogEntry {
    /// BLAKE3(0x00 || canonical JSON of the entry).
    pub fn leaf_hash(&self) -> Result<Hash> {
        let value = serde_json::to_value(self).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(leaf_hash(&to_canonical(&value)?))
    }
}

/// BLAKE3(0x00 || leaf bytes).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(data);
    Hash(*h.finalize().as_bytes())
}

/// BLAKE3(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&left.0);
    h.update(&right.0);
    Hash(*h.finalize().as_bytes())
}

/// Root of the empty log: BLAKE3 of no bytes.
pub fn empty_root() -> Hash {
    Hash::of(&[])
}

/// Proof that a leaf is in a log of a given size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub path: Vec<Hash>,
}

/// Proof that the log of `new_size` extends the log of `old_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<Hash>,
}

/// Longest proof path accepted (a log of 2^64 leaves needs 64).
pub const MAX_PROOF_LEN: usize = 64;

/// In-memory log of leaf hashes with O(log n) append and root.
#[derive(Clone, Debug, Default)]
pub struct MerkleLog {
    leaves: Vec<Hash>,
    /// Roots of the perfect subtrees that make up the log, largest first (one per set bit of `len`).
    frontier: Vec<Hash>,
}

impl MerkleLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut size = self.leaves.len();
        self.leaves.push(leaf);
        let mut acc = leaf;
        while size & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                break;
            };
            acc = node_hash(&left, &acc);
            size >>= 1;
        }
        self.frontier.push(acc);
    }

    pub fn root(&self) -> Hash {
        let mut it = self.frontier.iter().rev();
        let Some(first) = it.next() else {
            return empty_root();
        };
        it.fold(*first, |acc, left| node_hash(left, &acc))
    }

    /// Root of this log with `extra` leaves appended, leaving the log unchanged: O(extra + log n).
    /// A replica checks entries it received against a signed root before it keeps them.
    pub fn root_with(&self, extra: &[Hash]) -> Hash {
        let mut frontier = self.frontier.clone();
        for (len, leaf) in (self.leaves.len()..).zip(extra) {
            let mut size = len;
            let mut acc = *leaf;
            while size & 1 == 1 {
                let Some(left) = frontier.pop() else { break };
                acc = node_hash(&left, &acc);
                size >>= 1;
            }
            frontier.push(acc);
        }
        let mut it = frontier.iter().rev();
        let Some(first) = it.next() else {
            return empty_root();
        };
        it.fold(*first, |acc, left| node_hash(left, &acc))
    }

    /// Root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        let n = self.check_size(size)?;
        Ok(if n == 0 { empty_root() } else { self.subtree(0, n) })
    }

    pub fn inclusion_proof(&self, leaf_index: u64, tree_size: u64) -> Result<InclusionProof> {
        let n = self.check_size(tree_size)?;
        if leaf_index >= tree_size {
            return Err(Error::InvalidProof(format!(
                "leaf {leaf_index} is not in a log of {tree_size}"
            )));
        }
        let mut path = Vec::new();
        self.path(leaf_index as usize, 0, n, &mut path);
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            path,
        })
    }

    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<ConsistencyProof> {
        let n = self.check_size(new_size)?;
        if old_size > new_size {
            return Err(Error::InvalidProof(format!(
                "old size {old_size} > new size {new_size}"
            )));
        }
        let mut path = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size as usize, 0, n, true, &mut path);
        }
        Ok(ConsistencyProof {
            old_size,
            new_size,
            path,
        })
    }

    fn check_size(&self, size: u64) -> Result<usize> {
        if size > self.len() {
            return Err(Error::InvalidProof(format!(
                "log has {} leaves, asked for {size}",
                self.len()
            )));
        }
        Ok(size as usize)
    }

    /// MTH(D[lo:hi]), hi > lo.
    fn subtree(&self, lo: usize, hi: usize) -> Hash {
        if hi - lo == 1 {
            return self.leaves[lo];
        }
        let k = split(hi - lo);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    fn path(&self, m: usize, lo: usize, hi: usize, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    fn subproof(&self, m: usize, lo: usize, hi: usize, complete: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, complete, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }
}

/// Largest power of two strictly less than n (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Check that `leaf` (a leaf hash) is at `proof.leaf_index` in the log with root `root`.
pub fn verify_inclusion(leaf: &Hash, proof: &InclusionProof, root: &Hash) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidProof(format!("inclusion: {why}")));
    if proof.leaf_index >= proof.tree_size {
        return bad("leaf index outside the tree");
    }
    if proof.path.len() > MAX_PROOF_LEN {
        return Err(Error::oversize("proof path", proof.path.len(), MAX_PROOF_LEN));
    }
    let (mut fnode, mut snode) = (proof.leaf_index, proof.tree_size - 1);
    let mut r = *leaf;
    for p in &proof.path {
        if snode == 0 {
            return bad("path too long");
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return bad("path too short");
    }
    if r != *root {
        return bad("root mismatch");
    }
    Ok(())
}

/// Check that the log with `new_root` extends the log with `old_root`.
pub fn verify_consistency(proof: &ConsistencyProof, old_root: &Hash, new_root: &Hash) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidProof(format!("consistency: {why}")));
    let (m, n) = (proof.old_size, proof.new_size);
    if proof.path.len() > MAX_PROOF_LEN {
        return Err(Error::oversize("proof path", proof.path.len(), MAX_PROOF_LEN));
    }
    if m > n {
        return bad("old size above new size");
    }
    if m == n {
        if !proof.path.is_empty() {
            return bad("equal sizes need an empty path");
        }
        return if old_root == new_root {
            Ok(())
        } else {
            bad("equal sizes, different roots")
        };
    }
    if m == 0 {
        // Every log extends the empty log.
        return if proof.path.is_empty() && *old_root == empty_root() {
            Ok(())
        } else {
            bad("empty old log")
        };
    }
    let mut path: Vec<Hash> = proof.path.clone();
    if path.is_empty() {
        return bad("empty path");
    }
    if m.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return bad("path too long");
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return bad("path too short");
    }
    if fr != *old_root || sr != *new_root {
        return bad("root mismatch");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> MerkleLog {
        let mut l = MerkleLog::new();
        for i in 0..n {
            l.push(leaf_hash(&(i as u64).to_be_bytes()));
        }
        l
    }

    #[test]
    fn incremental_root_matches_recursive_definition() {
        let l = log(33);
        for size in 0..=33u64 {
            let mut prefix = MerkleLog::new();
            for i in 0..size {
                prefix.push(leaf_hash(&i.to_be_bytes()));
            }
            assert_eq!(prefix.root(), l.root_at(size).unwrap(), "size {size}");
        }
        assert_eq!(MerkleLog::new().root(), empty_root());
        assert_eq!(MerkleLog::new().root_with(&[]), empty_root());
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        let l = log(21);
        for size in 1..=21u64 {
            let root = l.root_at(size).unwrap();
            for i in 0..size {
                let leaf = leaf_hash(&i.to_be_bytes());
                let p = l.inclusion_proof(i, size).unwrap();
                verify_inclusion(&leaf, &p, &root).unwrap();
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(&other, &p, &root).is_err());
                if !p.path.is_empty() {
                    let mut bad = p.clone();
                    bad.path.pop();
                    assert!(verify_inclusion(&leaf, &bad, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_tampering_fails() {
        let l = log(19);
        for new in 0..=19u64 {
            for old in 0..=new {
                let p = l.consistency_proof(old, new).unwrap();
                let (a, b) = (l.root_at(old).unwrap(), l.root_at(new).unwrap());
                verify_consistency(&p, &a, &b).unwrap_or_else(|e| panic!("{old}->{new}: {e}"));
                if old > 0 && old < new {
                    let wrong = leaf_hash(b"forged");
                    assert!(verify_consistency(&p, &wrong, &b).is_err());
                    assert!(verify_consistency(&p, &a, &wrong).is_err());
                }
            }
        }
    }

    #[test]
    fn proofs_for_sizes_the_log_does_not_have_are_refused() {
        let l = log(4);
        assert!(l.inclusion_proof(4, 4).is_err());
        assert!(l.inclusion_proof(0, 5).is_err());
        assert!(l.consistency_proof(3, 2).is_err());
    }

    #[test]
    fn root_with_equals_appending() {
        for base in 0..20 {
            for extra in 0..20 {
                let prefix = log(base);
                let whole = log(base + extra);
                let leaves: Vec<Hash> = (base..base + extra)
                    .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
                    .collect();
                assert_eq!(prefix.root_with(&leaves), whole.root(), "{base}+{extra}");
            }
        }
    }
}
