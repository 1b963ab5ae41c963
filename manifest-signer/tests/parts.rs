//! PART statements from the signer (PROTOCOL §16): chained per rendition, verified by a
//! consumer's PartChain, each segment exactly its signed parts, and no media sequence number
//! reused after a restart.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use manifest_signer::part::PartChain;
use manifest_signer::signer::{NewPart, NewSegment, RenditionInfo, SignerConfig, StreamSigner};
use manifest_signer::{Container, StreamKey};

fn key() -> StreamKey {
    StreamKey::from_seed([7; 32])
}

fn config() -> SignerConfig {
    SignerConfig {
        parts: true,
        ..SignerConfig::default()
    }
}

/// Four parts of segment `i`, and the segment they make up.
fn parts_and_segment(i: u32) -> (Vec<NewPart>, NewSegment) {
    let chunks: Vec<Vec<u8>> = (0..4).map(|p| format!("segment {i} part {p}").into_bytes()).collect();
    let parts = chunks
        .iter()
        .enumerate()
        .map(|(p, c)| NewPart {
            rendition: "source".into(),
            index: p as u16,
            data: Arc::from(&c[..]),
            duration_us: 200_000,
            independent: p == 0,
            fresh: false,
        })
        .collect();
    let segment = NewSegment {
        rendition: "source".into(),
        container: Container::Fmp4,
        data: Arc::from(chunks.concat()),
        init: Some(Arc::from(&b"init"[..])),
        duration_us: 800_000,
        discontinuity: false,
        independent: true,
        pdt_ms: None,
        info: RenditionInfo::default(),
    };
    (parts, segment)
}

#[test]
fn parts_chain_and_make_up_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), config()).unwrap();
    let mut chain = PartChain::new(key().stream_id());
    for i in 0..3 {
        let (parts, segment) = parts_and_segment(i);
        for p in parts {
            let data = p.data.clone();
            let signed = signer.sign_part(p).unwrap();
            let checked = chain.accept_wire(signed.wire()).unwrap();
            checked.check_bytes(&data).unwrap();
            assert_eq!(checked.body.seq, u64::from(i), "signed under its segment's number");
        }
        let m = signer.publish(vec![segment]).unwrap();
        assert_eq!(m.body.renditions[0].segments.last().unwrap().seq, u64::from(i));
    }
    // A part out of order, and a segment that is not its parts, are refused.
    let (mut parts, mut segment) = parts_and_segment(3);
    let err = signer.sign_part(parts.remove(1)).unwrap_err();
    assert_eq!(err.code(), "chain_break", "{err}");
    signer.sign_part(parts.remove(0)).unwrap();
    segment.data = Arc::from(&b"something else"[..]);
    let err = signer.publish(vec![segment]).unwrap_err();
    assert_eq!(err.code(), "chain_break", "{err}");
}

#[test]
fn a_fresh_segment_begins_without_prev_and_consumers_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), config()).unwrap();
    let mut chain = PartChain::new(key().stream_id());
    for i in 0..2 {
        let (parts, segment) = parts_and_segment(i);
        for mut p in parts {
            // Segment 1 begins a discontinuity: its part 0 is fresh.
            p.fresh = i == 1;
            let signed = signer.sign_part(p).unwrap();
            let fresh_start = i == 1 && signed.body.part == 0;
            assert_eq!(
                signed.body.prev.is_none(),
                i == 0 && signed.body.part == 0 || fresh_start
            );
            chain.accept_wire(signed.wire()).unwrap();
        }
        signer.publish(vec![segment]).unwrap();
    }
}

#[test]
fn a_restart_never_reuses_the_number_of_a_segment_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), config()).unwrap();
    for i in 0..2 {
        let (parts, segment) = parts_and_segment(i);
        for p in parts {
            signer.sign_part(p).unwrap();
        }
        signer.publish(vec![segment]).unwrap();
    }
    // Parts of segment 2 are signed, then the node dies before segment 2 is.
    let (parts, _) = parts_and_segment(2);
    let lost = signer.sign_part(parts[0].clone()).unwrap();
    assert_eq!(lost.body.seq, 2);
    drop(signer);

    let mut signer = StreamSigner::open(key(), dir.path(), config()).unwrap();
    let (parts, segment) = parts_and_segment(9);
    let first = signer.sign_part(parts[0].clone()).unwrap();
    assert_eq!(first.body.seq, 3, "one number further on");
    for p in parts.into_iter().skip(1) {
        signer.sign_part(p).unwrap();
    }
    let m = signer.publish(vec![segment]).unwrap();
    let r = &m.body.renditions[0];
    let seqs: Vec<u64> = r.segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [3], "a fresh window: its numbers stay consecutive");
    assert!(r.segments[0].disc);
}

/// A segment that cannot be signed after its parts were: its number is spent, and the next
/// segment with its own parts is signed one number on, in a fresh window.
#[test]
fn a_segment_lost_after_its_parts_spends_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), config()).unwrap();
    let (parts, segment) = parts_and_segment(0);
    for p in parts {
        signer.sign_part(p).unwrap();
    }
    signer.publish(vec![segment]).unwrap();
    let (parts, _) = parts_and_segment(1);
    for p in parts {
        signer.sign_part(p).unwrap();
    }
    // Segment 1 is refused (here: its bytes are not its parts; on a node, a full disk).
    let (_, mut bad) = parts_and_segment(1);
    bad.data = Arc::from(&b"not the parts"[..]);
    assert!(signer.publish(vec![bad]).is_err());
    let (parts, segment) = parts_and_segment(2);
    for p in parts {
        assert_eq!(signer.sign_part(p).unwrap().body.seq, 2);
    }
    let m = signer.publish(vec![segment]).unwrap();
    assert_eq!(
        m.body.renditions[0].segments.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [2]
    );
}
