//! Every wire decoder of the signed protocol on the same bytes; none may panic, and what
//! they accept must hold together:
//! - `Signed::<ManifestRoot>::from_wire`, `Signed::<StreamAnnounce>::from_wire`, and a
//!   `ManifestChain` fed the bytes; `SignedPart::verify` and a `PartChain`;
//! - the canonical parser (accepted bytes re-encode to themselves) and the canonical encoder
//!   (any JSON it encodes parses back as canonical, to the same value);
//! - a segment-log line as `StreamStore::read_log` parses it, and its leaf hash;
//! - Merkle inclusion and consistency proofs as JSON: when one verifies against a proof of
//!   the test vectors' log with the same sizes, it is that proof (proofs are unique).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use manifest_signer::canonical::{from_canonical, to_canonical};
use manifest_signer::merkle::{ConsistencyProof, InclusionProof, LogEntry, verify_consistency, verify_inclusion};
use manifest_signer::part::{PartChain, SignedPart};
use manifest_signer::{Hash, ManifestChain, ManifestRoot, Signed, StreamAnnounce, vectors};
use serde_json::Value;

struct Known {
    stream: manifest_signer::StreamId,
    /// (leaf hash, proof, root) of every good inclusion vector.
    inclusion: Vec<(Hash, InclusionProof, Hash)>,
    /// (proof, old root, new root) of every good consistency vector.
    consistency: Vec<(ConsistencyProof, Hash, Hash)>,
}

fn known() -> &'static Known {
    static KNOWN: OnceLock<Known> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let all = vectors::generate().expect("test vectors");
        let good = |kind: &'static str| -> Vec<Value> {
            all.iter()
                .filter(|(_, v)| v["kind"] == kind && v["expect"] == "ok")
                .map(|(_, v)| v.clone())
                .collect()
        };
        let hash = |v: &Value| -> Hash { serde_json::from_value(v.clone()).expect("hash") };
        Known {
            stream: vectors::test_key("A").stream_id(),
            inclusion: good("inclusion")
                .into_iter()
                .map(|v| {
                    let entry: LogEntry = serde_json::from_value(v["entry"].clone()).expect("entry");
                    let proof = serde_json::from_value(v["proof"].clone()).expect("proof");
                    (entry.leaf_hash().expect("leaf"), proof, hash(&v["root"]))
                })
                .collect(),
            consistency: good("consistency")
                .into_iter()
                .map(|v| {
                    let proof = serde_json::from_value(v["proof"].clone()).expect("proof");
                    (proof, hash(&v["old_root"]), hash(&v["new_root"]))
                })
                .collect(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let k = known();

    if let Ok(m) = Signed::<ManifestRoot>::from_wire(data) {
        assert_eq!(m.wire(), data);
        let mut chain = ManifestChain::new(m.body.stream);
        chain
            .accept_wire(data)
            .expect("a manifest that verifies starts a chain");
    }
    if let Ok(a) = Signed::<StreamAnnounce>::from_wire(data) {
        assert_eq!(a.wire(), data);
    }
    let _ = ManifestChain::new(k.stream).accept_wire(data);
    // PART statements (binary): what verifies re-encodes to itself and starts a chain.
    if let Ok(p) = SignedPart::verify(data, &k.stream) {
        assert_eq!(p.wire(), data);
        PartChain::new(k.stream)
            .accept_wire(data)
            .expect("a part that verifies starts a chain");
    }

    if let Ok(v) = from_canonical(data) {
        assert_eq!(to_canonical(&v).expect("accepted canonical re-encodes"), data);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data)
        && let Ok(c) = to_canonical(&v)
    {
        let back = from_canonical(&c).unwrap_or_else(|e| panic!("canonical output refused: {e}"));
        assert_eq!(back, v);
    }

    // As StreamStore::read_log reads one line.
    if let Ok(entry) = serde_json::from_slice::<LogEntry>(data) {
        let _ = entry.leaf_hash();
    }

    if let Ok(p) = serde_json::from_slice::<InclusionProof>(data) {
        for (leaf, good, root) in &k.inclusion {
            let _ = verify_inclusion(leaf, &p, root);
            if (p.leaf_index, p.tree_size) == (good.leaf_index, good.tree_size)
                && verify_inclusion(leaf, &p, root).is_ok()
            {
                assert_eq!(&p, good, "a second inclusion proof verifies");
            }
        }
    }
    if let Ok(p) = serde_json::from_slice::<ConsistencyProof>(data) {
        for (good, old, new) in &k.consistency {
            let _ = verify_consistency(&p, old, new);
            if (p.old_size, p.new_size) == (good.old_size, good.new_size) && verify_consistency(&p, old, new).is_ok() {
                assert_eq!(&p, good, "a second consistency proof verifies");
            }
        }
    }
});
