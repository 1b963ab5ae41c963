//! Test vectors of the PART statement (docs/design/parts.md, PROTOCOL.md §16): single
//! statements (`part`, wire bytes as hex) and per-rendition chains (`part_chain`).

use serde_json::json;

use super::{T0, Vector, case, hex, obj, test_key, text};
use crate::objects::{Container, ManifestRoot, Rendition, sign_raw as sign_manifest, to_envelope};
use crate::part::{MAX_SAFE_INTEGER, Part, SignedPart, sign_raw};
use crate::{Hash, Result, StreamKey};

/// The bytes of part `idx` of segment `seq` in the vectors.
pub fn part_bytes(seq: u64, idx: u16) -> Vec<u8> {
    let mut b = format!("hlswarm test part {seq}.{idx} ").into_bytes();
    b.resize(100 + usize::from(idx) * 13, (seq % 251) as u8);
    b
}

fn body(seq: u64, idx: u16, prev: Option<Hash>) -> Part {
    let data = part_bytes(seq, idx);
    Part {
        rendition: "source".into(),
        seq,
        part: idx,
        dur_us: 200_000,
        size: data.len() as u32,
        time_ms: T0 + seq * 1000 + u64::from(idx) * 200,
        hash: Hash::of(&data),
        independent: idx == 0,
        prev,
    }
}

pub(super) fn push(out: &mut Vec<Vector>) -> Result<()> {
    let (a, b) = (test_key("A"), test_key("B"));
    let ida = a.stream_id().to_string();
    // A good statement comes with its id and the part's bytes, which a verifier checks too.
    let single = |name: &str, desc: &str, expect: &str, wire: &[u8], good: Option<&SignedPart>| {
        let mut f = obj(json!({"stream": ida, "wire_hex": hex(wire)}));
        if let Some(p) = good {
            f.insert("id".into(), json!(p.id.to_hex()));
            f.insert("data_hex".into(), json!(hex(&part_bytes(p.body.seq, p.body.part))));
        }
        case(name, desc, "part", json!(expect), f)
    };
    let p0 = SignedPart::sign(body(5, 0, None), &a)?;
    let p1 = SignedPart::sign(body(5, 1, Some(p0.id)), &a)?;
    let p2 = SignedPart::sign(body(5, 2, Some(p1.id)), &a)?;
    out.push(single(
        "part-ok-first",
        "part 0 of segment 5, independent, first of its publish (no prev); data_hex is the part",
        "ok",
        p0.wire(),
        Some(&p0),
    ));
    out.push(single(
        "part-ok-chained",
        "part 1 of segment 5, not independent, prev = the id of part-ok-first",
        "ok",
        p1.wire(),
        Some(&p1),
    ));
    let forged = SignedPart::sign(body(5, 1, Some(p0.id)), &b)?;
    out.push(single(
        "part-bad-forged",
        "part-ok-chained signed by key B",
        "bad_signature",
        forged.wire(),
        None,
    ));
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut w = p1.wire().to_vec();
        f(&mut w);
        w
    };
    let name_len = 6;
    let size_at = 4 + name_len + 8 + 2 + 4;
    let bad = [
        (
            "part-bad-signature-flipped",
            "last byte of the signature flipped",
            "bad_signature",
            edit(&|w| {
                let n = w.len() - 1;
                w[n] ^= 1;
            }),
        ),
        (
            "part-bad-tampered-size",
            "size raised by one after signing",
            "bad_signature",
            edit(&|w| w[size_at + 3] ^= 1),
        ),
        (
            "part-bad-tampered-independent",
            "the independent flag set after signing",
            "bad_signature",
            edit(&|w| w[2] |= 1),
        ),
        (
            "part-bad-truncated",
            "the last byte of the signature missing",
            "malformed",
            edit(&|w| {
                w.pop();
            }),
        ),
        (
            "part-bad-trailing-byte",
            "one byte after the signature",
            "malformed",
            edit(&|w| w.push(0)),
        ),
        (
            "part-bad-reserved-flag",
            "flag bit 7 set",
            "malformed",
            edit(&|w| w[2] |= 0x80),
        ),
        (
            "part-bad-wrong-type",
            "type byte 0x02",
            "wrong_type",
            edit(&|w| w[0] = 2),
        ),
        (
            "part-bad-unknown-version",
            "version byte 2",
            "unknown_version",
            edit(&|w| w[1] = 2),
        ),
        (
            "part-bad-oversize",
            "191 bytes (the limit is 190)",
            "oversize",
            edit(&|w| w.resize(191, 0)),
        ),
    ];
    for (name, desc, expect, wire) in bad {
        out.push(single(name, desc, expect, &wire, None));
    }
    // Validly signed, but breaking a rule the signer must keep.
    let raw = |p: Part| sign_raw(&p.body(), &a);
    out.push(single(
        "part-bad-name",
        "validly signed, rendition name \"a/b\"",
        "malformed",
        &raw(Part {
            rendition: "a/b".into(),
            ..body(5, 1, None)
        }),
        None,
    ));
    out.push(single(
        "part-bad-zero-size",
        "validly signed, size 0",
        "malformed",
        &raw(Part {
            size: 0,
            ..body(5, 1, None)
        }),
        None,
    ));
    out.push(single(
        "part-bad-unsafe-seq",
        "validly signed, seq 2^53 (above the integers JavaScript holds exactly)",
        "malformed",
        &raw(Part {
            seq: MAX_SAFE_INTEGER + 1,
            ..body(5, 1, None)
        }),
        None,
    ));
    out.push(single(
        "part-bad-long-name",
        "validly signed, a 33-byte rendition name",
        "oversize",
        &raw(Part {
            rendition: "a".repeat(33),
            ..body(5, 1, None)
        }),
        None,
    ));

    let chain = |name: &str, desc: &str, wires: &[&[u8]], expect: &[&str]| {
        let wires: Vec<String> = wires.iter().map(|w| hex(w)).collect();
        case(
            name,
            desc,
            "part_chain",
            json!(expect),
            obj(json!({"stream": ida, "wires_hex": wires})),
        )
    };
    let p6 = SignedPart::sign(body(6, 0, Some(p2.id)), &a)?;
    out.push(chain(
        "part-chain-ok",
        "parts 0, 1, 2 of segment 5 and part 0 of segment 6, each naming the one before",
        &[p0.wire(), p1.wire(), p2.wire(), p6.wire()],
        &["ok", "ok", "ok", "ok"],
    ));
    out.push(chain(
        "part-chain-ok-gap",
        "a viewer that missed part 1: prev is not checked across a gap",
        &[p0.wire(), p2.wire()],
        &["ok", "ok"],
    ));
    out.push(chain(
        "part-chain-bad-replay",
        "the same part twice, then an older one (a lying mirror's rollback)",
        &[p0.wire(), p1.wire(), p1.wire(), p0.wire()],
        &["ok", "ok", "replay", "replay"],
    ));
    let twin = SignedPart::sign(
        Part {
            size: p1.body.size + 1,
            ..body(5, 1, Some(p0.id))
        },
        &a,
    )?;
    out.push(chain(
        "part-chain-bad-equivocation",
        "a second, different statement for part 1 of segment 5 (both kept as evidence)",
        &[p0.wire(), p1.wire(), twin.wire()],
        &["ok", "ok", "equivocation"],
    ));
    let wrong_prev = SignedPart::sign(body(5, 2, Some(p0.id)), &a)?;
    out.push(chain(
        "part-chain-bad-prev",
        "part 2 names part 0 rather than part 1, the latest",
        &[p0.wire(), p1.wire(), wrong_prev.wire()],
        &["ok", "ok", "chain_break"],
    ));
    // Revision 1.5: part 0 of the next segment after missed parts names a part never seen (the
    // segment's real last part): a gap, accepted; naming an older accepted part breaks the chain.
    let unseen_last = SignedPart::sign(body(5, 2, Some(p1.id)), &a)?;
    let next_after_gap = SignedPart::sign(body(6, 0, Some(unseen_last.id)), &a)?;
    out.push(chain(
        "part-chain-ok-missed-end-of-segment",
        "parts 0 and 1 of segment 5, then part 0 of segment 6 naming part 2 of segment 5, never \
         received: a gap, not a chain break (revision 1.5)",
        &[p0.wire(), p1.wire(), next_after_gap.wire()],
        &["ok", "ok", "ok"],
    ));
    let next_names_older = SignedPart::sign(body(6, 0, Some(p0.id)), &a)?;
    out.push(chain(
        "part-chain-bad-prev-next-segment",
        "part 0 of segment 6 naming part 0 of segment 5, accepted but not the latest (revision 1.5)",
        &[p0.wire(), p1.wire(), next_names_older.wire()],
        &["ok", "ok", "chain_break"],
    ));
    let earlier = SignedPart::sign(
        Part {
            time_ms: p1.body.time_ms - 1,
            ..body(5, 2, Some(p1.id))
        },
        &a,
    )?;
    out.push(chain(
        "part-chain-bad-time",
        "part 2 signed before part 1",
        &[p0.wire(), p1.wire(), earlier.wire()],
        &["ok", "ok", "chain_break"],
    ));
    Ok(())
}

/// Protocol 1.5: a rendition's `part_target_us`, good and wrong in each way, validly signed.
/// `base` is a first manifest with one fMP4 rendition, signed by `a`.
pub(super) fn push_manifests(out: &mut Vec<Vector>, base: &ManifestRoot, a: &StreamKey) -> Result<()> {
    let ida = a.stream_id().to_string();
    let with = |f: &dyn Fn(&mut Rendition)| -> Result<Vec<u8>> {
        let mut m = base.clone();
        f(&mut m.renditions[0]);
        sign_manifest::<ManifestRoot>(to_envelope(&m)?, a)
    };
    let manifest = |name: &str, desc: &str, wire: Vec<u8>, expect: &str| {
        case(
            name,
            desc,
            "manifest",
            json!(expect),
            obj(json!({"stream": ida, "wire": text(&wire)})),
        )
    };
    out.push(manifest(
        "manifest-ok-part-target",
        "an fMP4 rendition with part_target_us 220000 (200 ms parts; protocol 1.5)",
        with(&|r| r.part_target_us = Some(220_000))?,
        "ok",
    ));
    out.push(manifest(
        "manifest-ok-part-target-max",
        "part_target_us 10000000, the largest allowed",
        with(&|r| r.part_target_us = Some(10_000_000))?,
        "ok",
    ));
    out.push(manifest(
        "manifest-bad-part-target-zero",
        "part_target_us 0, validly signed",
        with(&|r| r.part_target_us = Some(0))?,
        "malformed",
    ));
    out.push(manifest(
        "manifest-bad-part-target-too-large",
        "part_target_us 10000001 (above 10 s), validly signed",
        with(&|r| r.part_target_us = Some(10_000_001))?,
        "malformed",
    ));
    out.push(manifest(
        "manifest-bad-part-target-on-ts",
        "part_target_us in an MPEG-TS rendition (no init, no parts), validly signed",
        with(&|r| {
            r.container = Container::Ts;
            r.init = None;
            for s in &mut r.segments {
                s.init = None;
            }
            r.part_target_us = Some(220_000);
        })?,
        "malformed",
    ));
    Ok(())
}
