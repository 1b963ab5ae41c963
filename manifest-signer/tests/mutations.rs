//! Bounded mutation run over the signed-object decoders: no input panics, and no mutated
//! object verifies. (Coverage-guided fuzzing lives under fuzz/ with the proof issue.)

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use manifest_signer::{ManifestRoot, Signed, StreamAnnounce, vectors};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// JSON-ish bytes that keep mutations near the grammar.
const ALPHABET: &[u8] = b"{}[]\",:0123456789.-aeflnrstu\\ ";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(3) {
        let i = rng.below(b.len().max(1));
        match rng.below(5) {
            0 if !b.is_empty() => b[i] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[i] = ALPHABET[rng.below(ALPHABET.len())],
            2 if !b.is_empty() => {
                b.remove(i);
            }
            3 => b.insert(i.min(b.len()), rng.next() as u8),
            _ => b.truncate(i),
        }
    }
    b
}

fn wires(kind: &str) -> Vec<Vec<u8>> {
    vectors::generate()
        .unwrap()
        .into_iter()
        .filter(|(_, v)| v["kind"] == kind && v["expect"] == "ok")
        .map(|(_, v)| v["wire"].as_str().unwrap().as_bytes().to_vec())
        .collect()
}

#[test]
fn mutated_manifests_and_announces_never_panic_and_never_verify() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let manifests = wires("manifest");
    let announces = wires("announce");
    assert!(!manifests.is_empty() && !announces.is_empty());
    for round in 0..20_000 {
        let (base, is_manifest) = if round % 2 == 0 {
            (&manifests[round / 2 % manifests.len()], true)
        } else {
            (&announces[round / 2 % announces.len()], false)
        };
        let m = mutate(&mut rng, base);
        let ok = if is_manifest {
            Signed::<ManifestRoot>::from_wire(&m).is_ok()
        } else {
            Signed::<StreamAnnounce>::from_wire(&m).is_ok()
        };
        assert!(
            !ok || m == *base,
            "round {round}: a mutated object verified: {}",
            String::from_utf8_lossy(&m)
        );
    }
}
