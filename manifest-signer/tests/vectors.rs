//! Runs every protocol test vector in tests/vectors/ through the Rust verifier, and checks the
//! committed files are exactly what the generator produces.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;

use manifest_signer::canonical::from_canonical;
use manifest_signer::merkle::{ConsistencyProof, InclusionProof, LogEntry, verify_consistency, verify_inclusion};
use manifest_signer::part::{PartChain, SignedPart};
use manifest_signer::playlist::{render_master, render_media};
use manifest_signer::{Error, Hash, ManifestChain, ManifestRoot, Signed, StreamAnnounce, StreamId, StreamKey, vectors};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} missing"))
}

fn code(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => e.code().into(),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The outcome of one vector: "ok" or an error code (a list for chains).
fn run(case: &Value) -> Value {
    let stream = || s(case, "stream").parse::<StreamId>().unwrap();
    match s(case, "kind") {
        "key" => {
            let seed: [u8; 32] = unhex(s(case, "seed_hex")).try_into().unwrap();
            let ok = StreamKey::from_seed(seed).stream_id().to_string() == s(case, "stream_id");
            Value::from(if ok { "ok" } else { "wrong_key" })
        }
        "canonical" => Value::from(code(from_canonical(s(case, "input").as_bytes()).map(|_| ()))),
        "manifest" => {
            let r = Signed::<ManifestRoot>::verify(s(case, "wire").as_bytes(), &stream());
            if let (Ok(m), Some(id)) = (&r, case["id"].as_str()) {
                assert_eq!(m.id.to_hex(), id, "object id");
            }
            Value::from(code(r.map(|_| ())))
        }
        "manifest_chain" => {
            let mut chain = ManifestChain::new(stream());
            let wires = case["wires"].as_array().unwrap();
            let out: Vec<String> = wires
                .iter()
                .map(|w| code(chain.accept_wire(w.as_str().unwrap().as_bytes()).map(|_| ())))
                .collect();
            if out.last().map(String::as_str) == Some("equivocation") {
                assert_eq!(
                    chain.evidence().len(),
                    1,
                    "equivocation keeps both manifests as evidence"
                );
                let ev = &chain.evidence()[0];
                assert_eq!(ev.first.body.seq, ev.second.body.seq);
                assert_ne!(ev.first.id, ev.second.id);
            }
            Value::from(out)
        }
        "part" => {
            let r = SignedPart::verify(&unhex(s(case, "wire_hex")), &stream());
            if let (Ok(p), Some(id)) = (&r, case["id"].as_str()) {
                assert_eq!(p.id.to_hex(), id, "object id");
                p.check_bytes(&unhex(s(case, "data_hex"))).unwrap();
            }
            Value::from(code(r.map(|_| ())))
        }
        "part_chain" => {
            let mut chain = PartChain::new(stream());
            let out: Vec<String> = case["wires_hex"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| code(chain.accept_wire(&unhex(w.as_str().unwrap())).map(|_| ())))
                .collect();
            if out.last().map(String::as_str) == Some("equivocation") {
                assert_eq!(chain.evidence().len(), 1, "equivocation keeps both parts as evidence");
            }
            Value::from(out)
        }
        "announce" => {
            let mut slot = manifest_signer::AnnounceSlot::new(stream());
            let now = case["now_ms"].as_u64().unwrap();
            Value::from(code(slot.accept_wire(s(case, "wire").as_bytes(), now).map(|_| ())))
        }
        "segment" => {
            let expected: Hash = s(case, "hash").parse().unwrap();
            let actual = Hash::of(&unhex(s(case, "data_hex")));
            let r = if actual == expected {
                Ok(())
            } else {
                Err(Error::HashMismatch {
                    what: "segment".into(),
                    expected: expected.to_hex(),
                    actual: actual.to_hex(),
                })
            };
            Value::from(code(r))
        }
        "inclusion" => {
            let entry: LogEntry = serde_json::from_value(case["entry"].clone()).unwrap();
            let proof: InclusionProof = serde_json::from_value(case["proof"].clone()).unwrap();
            let root: Hash = s(case, "root").parse().unwrap();
            Value::from(code(verify_inclusion(&entry.leaf_hash().unwrap(), &proof, &root)))
        }
        "consistency" => {
            let proof: ConsistencyProof = serde_json::from_value(case["proof"].clone()).unwrap();
            let (a, b): (Hash, Hash) = (
                s(case, "old_root").parse().unwrap(),
                s(case, "new_root").parse().unwrap(),
            );
            Value::from(code(verify_consistency(&proof, &a, &b)))
        }
        "playlist" => {
            let m = Signed::<ManifestRoot>::verify(s(case, "wire").as_bytes(), &stream()).unwrap();
            let mut ok = render_master(&m.body) == s(case, "master");
            for r in &m.body.renditions {
                ok &= case["media"][&r.name].as_str() == Some(render_media(r).as_str());
            }
            Value::from(if ok { "ok" } else { "playlist_mismatch" })
        }
        other => panic!("unknown vector kind {other}"),
    }
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    let index: Vec<String> = serde_json::from_slice(&std::fs::read(dir().join("index.json")).unwrap()).unwrap();
    assert!(index.len() >= 40, "expected the full vector set, found {}", index.len());
    let mut kinds = std::collections::BTreeSet::new();
    for name in index {
        let case: Value = serde_json::from_slice(&std::fs::read(dir().join(&name)).unwrap()).unwrap();
        kinds.insert(s(&case, "kind").to_string());
        assert_eq!(run(&case), case["expect"], "vector {name}");
    }
    for k in [
        "key",
        "canonical",
        "manifest",
        "manifest_chain",
        "announce",
        "segment",
        "inclusion",
        "consistency",
        "playlist",
    ] {
        assert!(kinds.contains(k), "no vector of kind {k}");
    }
}

#[test]
fn committed_vectors_match_the_generator() {
    for (name, value) in vectors::generate().unwrap() {
        let committed: Value = serde_json::from_slice(&std::fs::read(dir().join(&name)).unwrap_or_else(|_| {
            panic!("{name} missing: run `cargo run -p manifest-signer --example gen-vectors -- tests/vectors`")
        }))
        .unwrap();
        assert_eq!(committed, value, "{name} is stale: regenerate the vectors");
    }
}

#[test]
fn announce_vector_round_trips_unicode_title() {
    let a = vectors::test_key("hlswarm test vector key A");
    let case: Value = serde_json::from_slice(&std::fs::read(dir().join("announce-ok.json")).unwrap()).unwrap();
    let ann = Signed::<StreamAnnounce>::verify(s(&case, "wire").as_bytes(), &a.stream_id()).unwrap();
    assert!(ann.body.title.contains("ünïcödé"));
}
