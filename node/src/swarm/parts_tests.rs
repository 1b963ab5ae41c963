#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use manifest_signer::StreamKey;
use manifest_signer::part::Part;

struct Origin {
    key: StreamKey,
    prev: Option<Hash>,
}

impl Origin {
    fn new() -> Self {
        Origin {
            key: StreamKey::from_seed([3; 32]),
            prev: None,
        }
    }

    fn stream(&self) -> StreamId {
        self.key.stream_id()
    }

    /// Signs part `part` of segment `seq`, chained to the previous one signed.
    fn part(&mut self, seq: u64, part: u16) -> (SignedPart, Bytes) {
        let bytes = Bytes::from(format!("part {seq}.{part}").into_bytes());
        let signed = SignedPart::sign(
            Part {
                rendition: "source".into(),
                seq,
                part,
                dur_us: 200_000,
                size: bytes.len() as u32,
                time_ms: 1_800_000_000_000 + seq * 1000 + u64::from(part) * 200,
                hash: Hash::of(&bytes),
                independent: part == 0,
                prev: self.prev,
            },
            &self.key,
        )
        .unwrap();
        self.prev = Some(signed.id);
        (signed, bytes)
    }
}

type Relay = PartRelay<u32, &'static str>;

fn verdicts(steps: &[Step<u32, &'static str>]) -> Vec<(u32, Verdict)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Report { msg, verdict, .. } => Some((*msg, *verdict)),
            _ => None,
        })
        .collect()
}

fn stored(steps: &[Step<u32, &'static str>]) -> Vec<(u64, u16)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Store { part, .. } => Some(part.body.position()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_statement_is_accepted_only_once_its_bytes_verified_and_in_order() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let now = Instant::now();
    let (p0, b0) = o.part(4, 0);
    let (p1, b1) = o.part(4, 1);
    let steps = r.statement(o.stream(), p0.wire(), 10, "origin", now);
    assert_eq!(
        steps,
        vec![Step::Fetch {
            peer: "origin",
            stream: o.stream(),
            hash: p0.body.hash
        }],
        "the bytes are fetched from who forwarded the statement; nothing reported yet"
    );
    r.statement(o.stream(), p1.wire(), 11, "origin", now);
    // Part 1's bytes first: held until part 0 is stored.
    let steps = r.bytes(&o.stream(), &p1.body.hash, &"origin", b1);
    assert!(steps.is_empty(), "{steps:?}");
    let steps = r.bytes(&o.stream(), &p0.body.hash, &"origin", b0);
    assert_eq!(stored(&steps), vec![(4, 0), (4, 1)]);
    assert_eq!(verdicts(&steps), vec![(10, Verdict::Accept), (11, Verdict::Accept)]);
    assert_eq!(r.counts.stored, 2);
}

#[test]
fn forged_replayed_and_tampered_parts_are_refused() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let now = Instant::now();
    let (p0, b0) = o.part(1, 0);
    // Forged: one byte of the signed bytes changed.
    let mut forged = p0.wire().to_vec();
    forged[20] ^= 1;
    let steps = r.statement(o.stream(), &forged, 1, "liar", now);
    assert_eq!(verdicts(&steps), vec![(1, Verdict::Reject)]);
    // Another stream's key: refused too.
    let mut other = Origin {
        key: StreamKey::from_seed([4; 32]),
        prev: None,
    };
    let (q0, _) = other.part(1, 0);
    assert_eq!(
        verdicts(&r.statement(o.stream(), q0.wire(), 2, "liar", now)),
        vec![(2, Verdict::Reject)]
    );
    // The real one, then tampered bytes from the forwarder: banned, nothing stored.
    r.statement(o.stream(), p0.wire(), 3, "peer", now);
    let mut bad = b0.to_vec();
    bad[0] ^= 1;
    let steps = r.bytes(&o.stream(), &p0.body.hash, &"peer", Bytes::from(bad));
    assert!(
        steps.iter().any(|s| matches!(s, Step::Ban { peer: "peer", .. })),
        "{steps:?}"
    );
    assert!(stored(&steps).is_empty());
    assert_eq!(verdicts(&steps), vec![(3, Verdict::Ignore)]);
    // The same statement again (another path, or a replay): ignored, not fetched.
    let steps = r.statement(o.stream(), p0.wire(), 4, "other", now);
    assert_eq!(verdicts(&steps), vec![(4, Verdict::Ignore)]);
    assert_eq!(r.counts.refused, 2);
}

#[test]
fn a_lost_part_leaves_the_rest_of_its_segment_to_the_manifest() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let t0 = Instant::now();
    let parts: Vec<_> = (0..3).map(|i| o.part(7, i)).collect();
    for (i, (p, _)) in parts.iter().enumerate() {
        r.statement(o.stream(), p.wire(), i as u32, "peer", t0);
    }
    // Part 0 arrives, part 1's fetch fails, part 2 arrived meanwhile: dropped (a gap).
    let s = r.bytes(&o.stream(), &parts[0].0.body.hash, &"peer", parts[0].1.clone());
    assert_eq!(stored(&s), vec![(7, 0)]);
    r.bytes(&o.stream(), &parts[2].0.body.hash, &"peer", parts[2].1.clone());
    let s = r.failed(&o.stream(), &parts[1].0.body.hash, &"peer");
    assert!(stored(&s).is_empty());
    assert_eq!(verdicts(&s), vec![(1, Verdict::Ignore), (2, Verdict::Ignore)]);
    // A later part of the same segment is not even fetched; the next segment's part 0 is.
    let (p3, _) = o.part(7, 3);
    assert_eq!(
        verdicts(&r.statement(o.stream(), p3.wire(), 3, "peer", t0)),
        vec![(3, Verdict::Ignore)]
    );
    let (n0, _) = o.part(8, 0);
    let s = r.statement(o.stream(), n0.wire(), 4, "peer", t0);
    assert!(matches!(s[..], [Step::Fetch { .. }]), "{s:?}");
    // A fetch that never answers gives up after FETCH_TIMEOUT.
    assert!(r.tick(t0 + FETCH_TIMEOUT / 2).is_empty());
    assert_eq!(verdicts(&r.tick(t0 + FETCH_TIMEOUT)), vec![(4, Verdict::Ignore)]);
}

#[test]
fn bytes_from_a_peer_not_asked_are_ignored() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let (p0, b0) = o.part(0, 0);
    r.statement(o.stream(), p0.wire(), 1, "asked", Instant::now());
    assert!(r.bytes(&o.stream(), &p0.body.hash, &"stranger", b0.clone()).is_empty());
    assert_eq!(stored(&r.bytes(&o.stream(), &p0.body.hash, &"asked", b0)), vec![(0, 0)]);
}

#[test]
fn a_busy_forwarder_redirects_and_the_report_still_names_it() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let (p0, b0) = o.part(2, 0);
    r.statement(o.stream(), p0.wire(), 7, "origin", Instant::now());
    assert!(r.pending(&o.stream(), &p0.body.hash));
    // The origin has uploaded it to b and c: ask b.
    let steps = r.elsewhere(&o.stream(), &p0.body.hash, &"origin", vec!["b", "c"]);
    assert_eq!(
        steps,
        vec![Step::Fetch {
            peer: "b",
            stream: o.stream(),
            hash: p0.body.hash
        }]
    );
    // Bytes from the origin now would be unasked-for; b's are taken, and the gossip report
    // goes to the peer that forwarded the statement.
    assert!(r.bytes(&o.stream(), &p0.body.hash, &"origin", b0.clone()).is_empty());
    let steps = r.bytes(&o.stream(), &p0.body.hash, &"b", b0);
    assert_eq!(stored(&steps), vec![(2, 0)]);
    assert!(steps.iter().any(|s| matches!(
        s,
        Step::Report {
            from: "origin",
            verdict: Verdict::Accept,
            ..
        }
    )));
    assert!(!r.pending(&o.stream(), &p0.body.hash));
}

#[test]
fn redirects_are_bounded_and_a_part_not_got_is_gone() {
    let mut o = Origin::new();
    let mut r = Relay::default();
    let (p0, _) = o.part(3, 0);
    let (s, h) = (o.stream(), p0.body.hash);
    r.statement(s, p0.wire(), 1, "origin", Instant::now());
    assert_eq!(r.elsewhere(&s, &h, &"origin", vec!["b"]).len(), 1);
    // b redirects back to the origin (already asked) and to c; and so on down the tree.
    assert!(matches!(
        r.elsewhere(&s, &h, &"b", vec!["origin", "c"])[..],
        [Step::Fetch { peer: "c", .. }]
    ));
    let names = ["d", "e", "f", "g", "h", "i", "j", "k", "l", "m"];
    let mut last = "c";
    for n in names.iter().take(MAX_TRIES - 3) {
        assert!(matches!(r.elsewhere(&s, &h, &last, vec![*n])[..], [Step::Fetch { .. }]));
        last = n;
    }
    // Asked MAX_TRIES peers: given up.
    let steps = r.elsewhere(&s, &h, &last, vec!["z"]);
    assert!(steps.contains(&Step::Gone { stream: s, hash: h }), "{steps:?}");
    assert_eq!(verdicts(&steps), vec![(1, Verdict::Ignore)]);
}
