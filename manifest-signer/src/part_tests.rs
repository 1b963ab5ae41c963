#![allow(clippy::unwrap_used)]

use super::*;

fn key(c: u8) -> StreamKey {
    StreamKey::from_seed([c; 32])
}

fn part(seq: u64, idx: u16, prev: Option<Hash>) -> Part {
    Part {
        rendition: "source".into(),
        seq,
        part: idx,
        dur_us: 200_000,
        size: 5,
        time_ms: 1_796_000_000_000 + seq * 1000 + u64::from(idx) * 200,
        hash: Hash::of(format!("{seq}.{idx}").as_bytes()),
        independent: idx == 0,
        prev,
    }
}

#[test]
fn a_signed_part_round_trips_within_the_budget_and_checks_its_bytes() {
    let k = key(1);
    let p = SignedPart::sign(part(7, 0, None), &k).unwrap();
    let with_prev = SignedPart::sign(part(7, 1, Some(p.id)), &k).unwrap();
    // The measured layout: 4 + name + 26 + 32 (+ 32 prev) + 64.
    assert_eq!(p.wire().len(), 4 + 6 + FIELDS + 32 + 64);
    assert_eq!(with_prev.wire().len(), p.wire().len() + 32);
    for s in [&p, &with_prev] {
        let back = SignedPart::verify(s.wire(), &k.stream_id()).unwrap();
        assert_eq!(&back, s);
    }
    let bytes = b"7.0";
    let good = SignedPart::sign(
        Part {
            hash: Hash::of(bytes),
            size: 3,
            ..part(7, 0, None)
        },
        &k,
    )
    .unwrap();
    good.check_bytes(bytes).unwrap();
    assert_eq!(good.check_bytes(b"7.1").unwrap_err().code(), "hash_mismatch");
    assert_eq!(good.check_bytes(b"7.00").unwrap_err().code(), "hash_mismatch");
}

#[test]
fn forged_tampered_and_malformed_statements_are_refused_with_their_code() {
    let (k, other) = (key(1), key(2));
    let id = k.stream_id();
    let wire = SignedPart::sign(part(7, 2, Some(Hash::of(b"p"))), &k)
        .unwrap()
        .wire()
        .to_vec();
    let code = |w: &[u8]| SignedPart::verify(w, &id).unwrap_err().code();
    // Signed by another key, or meant for another stream.
    let forged = SignedPart::sign(part(7, 2, None), &other).unwrap();
    assert_eq!(code(forged.wire()), "bad_signature");
    assert_eq!(
        SignedPart::verify(&wire, &other.stream_id()).unwrap_err().code(),
        "bad_signature"
    );
    // Every single flipped bit of the signed bytes is caught.
    for i in 0..wire.len() {
        let mut w = wire.clone();
        w[i] ^= 0x01;
        let c = code(&w);
        assert!(
            [
                "bad_signature",
                "malformed",
                "wrong_type",
                "unknown_version",
                "oversize"
            ]
            .contains(&c),
            "byte {i}: {c}"
        );
    }
    let mut w = wire.clone();
    w[0] = 0x02;
    assert_eq!(code(&w), "wrong_type");
    let mut w = wire.clone();
    w[1] = 2;
    assert_eq!(code(&w), "unknown_version");
    let mut w = wire.clone();
    w[2] |= 0x80;
    assert_eq!(code(&w), "malformed", "reserved flag bit");
    for n in 0..wire.len() {
        assert_eq!(code(&wire[..n]), "malformed", "truncated to {n}");
    }
    let mut long = wire.clone();
    long.push(0);
    assert_eq!(code(&long), "malformed", "a byte after the signature");
    assert_eq!(code(&[0; MAX_WIRE_BYTES + 1]), "oversize");
    // Bad names and sizes cannot be signed either.
    for bad in [
        Part {
            rendition: "a/b".into(),
            ..part(1, 0, None)
        },
        Part {
            rendition: String::new(),
            ..part(1, 0, None)
        },
        Part {
            size: 0,
            ..part(1, 0, None)
        },
        Part {
            dur_us: MAX_PART_DUR_US + 1,
            ..part(1, 0, None)
        },
    ] {
        assert_eq!(SignedPart::sign(bad, &k).unwrap_err().code(), "malformed");
    }
    let big = Part {
        size: MAX_PART_BYTES + 1,
        ..part(1, 0, None)
    };
    assert_eq!(SignedPart::sign(big, &k).unwrap_err().code(), "oversize");
    let long_name = Part {
        rendition: "a".repeat(33),
        ..part(1, 0, None)
    };
    assert_eq!(SignedPart::sign(long_name, &k).unwrap_err().code(), "oversize");
}

#[test]
fn the_chain_refuses_replays_rollbacks_breaks_and_equivocation_and_allows_gaps() {
    let k = key(1);
    let mut chain = PartChain::new(k.stream_id());
    let p0 = SignedPart::sign(part(10, 0, None), &k).unwrap();
    let p1 = SignedPart::sign(part(10, 1, Some(p0.id)), &k).unwrap();
    let p2 = SignedPart::sign(part(10, 2, Some(p1.id)), &k).unwrap();
    chain.accept_wire(p0.wire()).unwrap();
    chain.accept_wire(p1.wire()).unwrap();
    // The same part again (gossip) and an older one (a lying mirror's rollback): replays.
    assert_eq!(chain.accept_wire(p1.wire()).unwrap_err().code(), "replay");
    assert_eq!(chain.accept_wire(p0.wire()).unwrap_err().code(), "replay");
    // Another statement for a position already accepted: equivocation, with both kept.
    let twin = SignedPart::sign(
        Part {
            size: 6,
            ..part(10, 1, Some(p0.id))
        },
        &k,
    )
    .unwrap();
    assert_eq!(chain.accept_wire(twin.wire()).unwrap_err().code(), "equivocation");
    assert_eq!(chain.evidence().len(), 1);
    assert_eq!(chain.evidence()[0].first, p1);
    // The successor must name the latest.
    let broken = SignedPart::sign(part(10, 2, Some(p0.id)), &k).unwrap();
    assert_eq!(chain.accept_wire(broken.wire()).unwrap_err().code(), "chain_break");
    chain.accept_wire(p2.wire()).unwrap();
    // The next segment's part 0 is a successor too; time may not go backwards.
    let back_in_time = SignedPart::sign(
        Part {
            time_ms: 1,
            ..part(11, 0, Some(p2.id))
        },
        &k,
    )
    .unwrap();
    assert_eq!(
        chain.accept_wire(back_in_time.wire()).unwrap_err().code(),
        "chain_break"
    );
    // A gap (a viewer joining, a lost message): prev is not checked.
    let later = SignedPart::sign(part(12, 3, Some(Hash::of(b"unknown"))), &k).unwrap();
    chain.accept_wire(later.wire()).unwrap();
    assert_eq!(chain.latest("source").unwrap(), &later);
    // Renditions are independent chains, bounded in number.
    for i in 0..crate::objects::limits::MAX_RENDITIONS - 1 {
        let p = SignedPart::sign(
            Part {
                rendition: format!("r{i}"),
                ..part(1, 0, None)
            },
            &k,
        )
        .unwrap();
        chain.accept(p).unwrap();
    }
    let one_more = SignedPart::sign(
        Part {
            rendition: "extra".into(),
            ..part(1, 0, None)
        },
        &k,
    )
    .unwrap();
    assert_eq!(chain.accept(one_more).unwrap_err().code(), "oversize");
    // Another stream's statement does not verify for this chain.
    let foreign = SignedPart::sign(part(13, 0, None), &key(2)).unwrap();
    assert_eq!(chain.accept_wire(foreign.wire()).unwrap_err().code(), "bad_signature");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let id = key(1).stream_id();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = SignedPart::verify(&bytes, &id);
        // And with a valid header, so the field parsing is reached.
        let mut framed = vec![TYPE, VERSION, bytes.first().copied().unwrap_or(0) & 0b11, 6];
        framed.extend_from_slice(b"source");
        framed.extend_from_slice(&bytes);
        let _ = SignedPart::verify(&framed, &id);
    }
}
