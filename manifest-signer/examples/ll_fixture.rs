//! Write the LL-HLS playlist fixture that the web client's port (web-client/src/verifier/
//! playlist_ll.js) must reproduce byte for byte:
//! `cargo run -p manifest-signer --example ll_fixture -- web-client/test/fixtures/playlist_ll.json`.
//!
//! Each case is a rendition (as a manifest carries it), the low-latency inputs, and what
//! `render_media_ll` and `last_position` give for them.

use manifest_signer::Hash;
use manifest_signer::objects::{Container, Rendition, SegmentRef};
use manifest_signer::playlist_ll::{LivePart, LowLatency, RenditionReport, last_position, render_media_ll};
use serde_json::{Value, json};

fn segment(seq: u64, dur_us: u64, init: &[u8]) -> SegmentRef {
    SegmentRef {
        seq,
        dur_us,
        hash: Hash::of(&seq.to_be_bytes()),
        size: 1000 + seq,
        disc: false,
        pdt_ms: Some(1_800_000_000_000 + seq * 1000),
        init: Some(Hash::of(init)),
        independent: None,
    }
}

fn rendition(name: &str, seqs: std::ops::Range<u64>, dur_us: u64) -> Rendition {
    Rendition {
        segments: seqs.map(|s| segment(s, dur_us, b"init")).collect(),
        ..Rendition::new(name, Container::Fmp4, 1)
    }
}

fn parts(seqs: std::ops::Range<u64>, per: u16, dur_us: u32) -> Vec<LivePart> {
    seqs.flat_map(|seq| {
        (0..per).map(move |part| LivePart {
            seq,
            part,
            dur_us: dur_us + u32::from(part) * 7,
            hash: Hash::of(&[seq as u8, part as u8]),
            independent: part == 0,
            chained: seq % 5 != 1 || part > 0,
        })
    })
    .collect()
}

fn case(name: &str, r: &Rendition, ll: &LowLatency<'_>) -> Value {
    let parts: Vec<Value> = ll
        .parts
        .iter()
        .map(|p| {
            json!({"seq": p.seq, "part": p.part, "dur_us": p.dur_us, "hash": p.hash.to_string(),
                "independent": p.independent, "chained": p.chained})
        })
        .collect();
    let reports: Vec<Value> = ll
        .reports
        .iter()
        .map(|r| {
            let mut v = json!({"name": r.name, "last_msn": r.last_msn});
            if let Some(p) = r.last_part {
                v["last_part"] = json!(p);
            }
            v
        })
        .collect();
    let input = json!({
        "part_target_us": ll.part_target_us,
        "parts": parts,
        "reports": reports,
        "skip": ll.skip,
    });
    json!({
        "name": name,
        "rendition": r,
        "ll": input,
        "text": render_media_ll(r, ll),
        "last_position": last_position(r, ll.parts),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "web-client/test/fixtures/playlist_ll.json".into());
    let reports = [
        RenditionReport {
            name: "audio".into(),
            last_msn: 8,
            last_part: Some(1),
        },
        RenditionReport {
            name: "low".into(),
            last_msn: 7,
            last_part: None,
        },
    ];
    let base_parts = {
        let mut p = parts(4..8, 5, 200_000);
        p.extend(parts(8..9, 2, 200_000));
        p
    };
    let r = rendition("source", 0..8, 1_000_000);
    let ll = LowLatency {
        part_target_us: 220_000,
        parts: &base_parts,
        reports: &reports,
        skip: false,
    };
    let mut cases = vec![case("live", &r, &ll)];
    // Part 0 of the segment in progress not chained (a new publish or init): not listed yet.
    let mut fresh = base_parts.clone();
    fresh
        .iter_mut()
        .filter(|p| p.seq == 8)
        .for_each(|p| p.chained = p.part > 0);
    cases.push(case(
        "new-publish-in-progress",
        &r,
        &LowLatency {
            parts: &fresh,
            ..ll.clone()
        },
    ));
    // Parts of a number after the next one: not listed.
    let mut later = parts(4..8, 5, 200_000);
    later.extend(parts(9..10, 2, 200_000));
    cases.push(case(
        "skipped-number",
        &r,
        &LowLatency {
            parts: &later,
            ..ll.clone()
        },
    ));
    cases.push(case(
        "delta-update",
        &r,
        &LowLatency {
            skip: true,
            ..ll.clone()
        },
    ));
    let mut ended = r.clone();
    ended.ended = true;
    cases.push(case("ended", &ended, &ll));
    let empty = rendition("source", 0..0, 1_000_000);
    cases.push(case("empty-window", &empty, &ll));
    cases.push(case(
        "nothing",
        &empty,
        &LowLatency {
            parts: &[],
            ..ll.clone()
        },
    ));
    let mut gap = parts(2..3, 5, 200_000);
    gap.remove(0);
    cases.push(case(
        "incomplete-run",
        &rendition("source", 0..3, 1_000_000),
        &LowLatency {
            parts: &gap,
            reports: &[],
            ..ll.clone()
        },
    ));
    // Odd durations (rounding up to ms in PART-TARGET), a discontinuity and an init change in
    // the window, a longer target duration, a disc_seq, parts only of window segments.
    let mut odd = Rendition {
        target_duration: 2,
        disc_seq: 3,
        segments: (10..16).map(|s| segment(s, 1_933_333, b"init")).collect(),
        ..Rendition::new("v720", Container::Fmp4, 2)
    };
    odd.segments[3].disc = true;
    for s in &mut odd.segments[3..] {
        s.init = Some(Hash::of(b"init2"));
    }
    odd.segments[5].pdt_ms = None;
    let odd_parts = parts(12..16, 6, 333_001);
    cases.push(case(
        "odd-durations",
        &odd,
        &LowLatency {
            part_target_us: 333_334,
            parts: &odd_parts,
            reports: &reports[1..],
            skip: false,
        },
    ));
    cases.push(case(
        "odd-durations-delta",
        &odd,
        &LowLatency {
            part_target_us: 333_334,
            parts: &odd_parts,
            reports: &[],
            skip: true,
        },
    ));
    let mut text = serde_json::to_string_pretty(&json!({
        "generated_by": "cargo run -p manifest-signer --example ll_fixture",
        "cases": cases,
    }))?;
    text.push('\n');
    std::fs::write(&out, text)?;
    println!("wrote {} cases to {out}", cases.len());
    Ok(())
}
