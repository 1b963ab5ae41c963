//! Which encoding signs LL-HLS parts within the budgets of the signed-parts design
//! (docs/design/parts.md): signing plus verifying one part at most 1 ms, and the signed
//! metadata a viewer downloads at most 2 % of a 1 Mb/s stream. Every candidate is built,
//! signed with Ed25519 over its real bytes and verified strictly, as a part would be.
//!
//! The scenario is the LL-HLS default: 1 s segments, 200 ms parts, a 1 Mb/s stream as one
//! video track (936 kb/s) and one audio track (64 kb/s), the node's default 8-segment window.
//! A viewer plays one video track and the audio track, so it downloads the statements of both.
//!
//! Prints a Markdown section for docs/BENCHMARKS.md (bench/parts.sh writes it there).
//!     cargo bench -p manifest-signer --bench part_budget

use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use manifest_signer::canonical::{from_canonical, to_canonical};
use manifest_signer::part::{Part, SignedPart};
use manifest_signer::{
    BlobRef, Container, Hash, LogHead, ManifestRoot, Rendition, SegmentRef, Signed, StreamId, StreamKey,
};
use serde_json::{Value, json};

const STREAM_BPS: f64 = 1_000_000.0;
const BUDGET: f64 = 0.02;
const PART_MS: u64 = 200;
const PARTS_PER_SEGMENT: u64 = 5;
const WINDOW: u64 = 8;
const VIDEO_PART_BYTES: u64 = 936_000 / 8 * PART_MS / 1000;
const AUDIO_PART_BYTES: u64 = 64_000 / 8 * PART_MS / 1000;
/// Live edge: segment 1000 of the stream, part 3 of it.
const SEQ: u64 = 1000;
const PART: u64 = 3;
const TIME_MS: u64 = 1_796_000_000_000;
const ITERS: u32 = 2000;
const SEED: [u8; 32] = [7; 32];

fn h(label: &str, n: u64) -> Hash {
    Hash::of(format!("{label}{n}").as_bytes())
}

fn hex(x: &Hash) -> String {
    x.to_string()
}

type SignFn = Box<dyn Fn(&SigningKey) -> Vec<u8>>;
type VerifyFn = Box<dyn Fn(&VerifyingKey, &[u8]) -> bool>;

/// One candidate: how it is built and how many of them a viewer fetches per second.
struct Candidate {
    name: &'static str,
    how: &'static str,
    per_second: f64,
    /// Sign once; returns the wire bytes.
    sign: SignFn,
    /// Verify wire bytes (parse, check, signature).
    verify: VerifyFn,
}

const DOMAIN: &[u8] = b"hlswarm-bench/part\0";

/// Canonical JSON with `sig` over DOMAIN || canonical(object without sig).
fn json_signed(obj: Value) -> impl Fn(&SigningKey) -> Vec<u8> {
    move |k: &SigningKey| {
        let mut o = obj.clone();
        let body = to_canonical(&o).unwrap_or_default();
        let sig = k.sign(&[DOMAIN, &body].concat());
        o["sig"] = Value::String(b64(&sig.to_bytes()));
        to_canonical(&o).unwrap_or_default()
    }
}

fn json_verify(vk: &VerifyingKey, wire: &[u8]) -> bool {
    let Ok(Value::Object(mut o)) = from_canonical(wire) else {
        return false;
    };
    let Some(Value::String(sig)) = o.remove("sig") else {
        return false;
    };
    let Some(sig) = unb64(&sig) else { return false };
    let Ok(body) = to_canonical(&Value::Object(o)) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    vk.verify_strict(&[DOMAIN, &body].concat(), &sig).is_ok()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Option<[u8; 64]> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?
        .try_into()
        .ok()
}

/// A fixed binary layout (docs/design/parts.md): type, version, flags (independent, has prev),
/// then per track its name (length-prefixed), seq u64, part u16, dur_us u32, size u32,
/// time_ms u64 and the 32-byte hash; then the previous statement's 32-byte id and the 64-byte
/// signature. The stream id is in the signing input, not on the wire: the verifier pins it.
fn binary_signed(stream: [u8; 32], tracks: Vec<(&'static str, u32, Hash)>) -> impl Fn(&SigningKey) -> Vec<u8> {
    move |k: &SigningKey| {
        let mut b = vec![0x01, 1, 0b11];
        for (name, size, hash) in &tracks {
            b.push(name.len() as u8);
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&SEQ.to_be_bytes());
            b.extend_from_slice(&(PART as u16).to_be_bytes());
            b.extend_from_slice(&(PART_MS as u32 * 1000).to_be_bytes());
            b.extend_from_slice(&size.to_be_bytes());
            b.extend_from_slice(&TIME_MS.to_be_bytes());
            b.extend_from_slice(&hash.0);
        }
        b.extend_from_slice(&h("prev", 0).0);
        let sig = k.sign(&[DOMAIN, &stream, &b].concat());
        b.extend_from_slice(&sig.to_bytes());
        b
    }
}

fn binary_verify(vk: &VerifyingKey, wire: &[u8]) -> bool {
    if wire.len() < 3 + 64 {
        return false;
    }
    let (body, sig) = wire.split_at(wire.len() - 64);
    let Ok(sig) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    vk.verify_strict(
        &[DOMAIN, vk.as_bytes(), body].concat(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

fn track_json(name: &str, size: u64) -> Value {
    json!({"rendition": name, "hash": hex(&h(name, PART)), "size": size,
           "dur_us": PART_MS * 1000, "independent": name == "audio"})
}

fn one_track(stream: &str, name: &str, size: u64, prev: bool) -> Value {
    let mut v = track_json(name, size);
    v["v"] = json!(1);
    v["type"] = json!("part");
    v["stream"] = json!(stream);
    v["seq"] = json!(SEQ);
    v["part"] = json!(PART);
    v["time_ms"] = json!(TIME_MS);
    if prev {
        v["prev"] = json!(hex(&h("prev", 0)));
    } else {
        v["manifest"] = json!(SEQ - 1);
    }
    v
}

/// The manifest a node signs today for this stream, plus the parts LL-HLS lists (those of the
/// segments of the last three target durations and of the segment in progress): what a
/// "manifest update per part" would be.
fn manifest_with_parts(key: &StreamKey) -> Value {
    let seg = |name: &str, i: u64, bytes: u64| SegmentRef {
        seq: SEQ - WINDOW + i,
        dur_us: 1_000_000,
        hash: h(name, i),
        size: bytes * PARTS_PER_SEGMENT,
        disc: false,
        pdt_ms: Some(TIME_MS - (WINDOW - i) * 1000),
        init: Some(h("init", 0)),
        independent: None,
    };
    let rendition = |name: &str, bytes: u64, codecs: &str| Rendition {
        name: name.into(),
        container: Container::Fmp4,
        target_duration: 1,
        disc_seq: 0,
        init: Some(BlobRef {
            hash: h("init", 0),
            size: 800,
        }),
        segments: (0..WINDOW).map(|i| seg(name, i, bytes)).collect(),
        ended: false,
        codecs: Some(codecs.into()),
        bandwidth: Some(1_000_000),
        average_bandwidth: Some(950_000),
        resolution: (name != "audio").then(|| "1280x720".into()),
        frame_rate_milli: (name != "audio").then_some(30_000),
        kind: None,
        channels: None,
        part_target_us: Some(220_000),
    };
    let m = ManifestRoot {
        stream: key.stream_id(),
        seq: SEQ,
        time_ms: TIME_MS,
        prev: Some(h("prev", 0)),
        renditions: vec![
            rendition("source", VIDEO_PART_BYTES, "avc1.64001f"),
            rendition("audio", AUDIO_PART_BYTES, "mp4a.40.2"),
        ],
        log: LogHead {
            size: SEQ * 2,
            root: h("root", 0),
        },
    };
    let wire = Signed::sign(m, key).map(|s| s.wire().to_vec()).unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&wire).unwrap_or(Value::Null);
    if let Some(rs) = v["renditions"].as_array_mut() {
        for r in rs {
            let name = r["name"].as_str().unwrap_or_default().to_string();
            let size = if name == "audio" {
                AUDIO_PART_BYTES
            } else {
                VIDEO_PART_BYTES
            };
            let parts: Vec<Value> = (0..3 * PARTS_PER_SEGMENT + PART)
                .map(|i| json!({"hash": hex(&h(&name, i)), "size": size, "dur_us": PART_MS * 1000, "independent": i % PARTS_PER_SEGMENT == 0}))
                .collect();
            r["parts"] = Value::Array(parts);
        }
    }
    if let Value::Object(o) = &mut v {
        o.remove("sig");
    }
    v
}

fn candidates(key: &StreamKey) -> Vec<Candidate> {
    let stream = key.stream_id().to_string();
    let parts_per_s = 1000.0 / PART_MS as f64;
    let both = || {
        json!([
            track_json("source", VIDEO_PART_BYTES),
            track_json("audio", AUDIO_PART_BYTES)
        ])
    };
    let per_instant = |prev: bool| {
        let mut v = json!({"v": 1, "type": "part", "stream": stream, "seq": SEQ, "part": PART,
                           "time_ms": TIME_MS, "tracks": both()});
        if prev {
            v["prev"] = json!(hex(&h("prev", 0)));
        } else {
            v["manifest"] = json!(SEQ - 1);
        }
        v
    };
    let jv = |vk: &VerifyingKey, w: &[u8]| json_verify(vk, w);
    let bv = |vk: &VerifyingKey, w: &[u8]| binary_verify(vk, w);
    let id = key.stream_id().0;
    let part_key = StreamKey::from_seed(SEED);
    let tracks = vec![
        ("source", VIDEO_PART_BYTES as u32, h("source", PART)),
        ("audio", AUDIO_PART_BYTES as u32, h("audio", PART)),
    ];
    vec![
        Candidate {
            name: "manifest update per part",
            how: "MANIFEST_ROOT re-signed at every part, listing the parts of the last 3 segments and the one in progress",
            per_second: parts_per_s,
            sign: Box::new(json_signed(manifest_with_parts(key))),
            verify: Box::new(jv),
        },
        Candidate {
            name: "JSON statement per part and track, `prev` id",
            how: "canonical JSON, hex hash, stream id, previous statement's id",
            per_second: 2.0 * parts_per_s,
            sign: Box::new(json_signed(one_track(&stream, "source", VIDEO_PART_BYTES, true))),
            verify: Box::new(jv),
        },
        Candidate {
            name: "JSON statement per part and track, `manifest` seq",
            how: "as above, chained to the manifest's seq instead of the previous statement's id",
            per_second: 2.0 * parts_per_s,
            sign: Box::new(json_signed(one_track(&stream, "source", VIDEO_PART_BYTES, false))),
            verify: Box::new(jv),
        },
        Candidate {
            name: "JSON statement per part instant (video + audio), `prev` id",
            how: "one canonical JSON object for both tracks' parts",
            per_second: parts_per_s,
            sign: Box::new(json_signed(per_instant(true))),
            verify: Box::new(jv),
        },
        Candidate {
            name: "JSON statement per part instant (video + audio), `manifest` seq",
            how: "as above, chained by the manifest's seq",
            per_second: parts_per_s,
            sign: Box::new(json_signed(per_instant(false))),
            verify: Box::new(jv),
        },
        Candidate {
            name: "binary statement per part and track, `prev` id: PART",
            how: "manifest_signer::part, the chosen layout: 4 bytes of header, the name, 26 bytes of fields, 32 of hash, 32 prev, 64 sig",
            per_second: 2.0 * parts_per_s,
            sign: Box::new(move |_: &SigningKey| {
                let p = Part {
                    rendition: "source".into(),
                    seq: SEQ,
                    part: PART as u16,
                    dur_us: (PART_MS * 1000) as u32,
                    size: VIDEO_PART_BYTES as u32,
                    time_ms: TIME_MS,
                    hash: h("source", PART),
                    independent: false,
                    prev: Some(h("prev", 0)),
                };
                SignedPart::sign(p, &part_key)
                    .map(|s| s.wire().to_vec())
                    .unwrap_or_default()
            }),
            verify: Box::new(|vk: &VerifyingKey, w: &[u8]| SignedPart::verify(w, &StreamId(vk.to_bytes())).is_ok()),
        },
        Candidate {
            name: "binary statement per part instant (video + audio), `prev` id",
            how: "the same layout with both tracks",
            per_second: parts_per_s,
            sign: Box::new(binary_signed(id, tracks)),
            verify: Box::new(bv),
        },
    ]
}

fn main() {
    let key = StreamKey::from_seed(SEED);
    let sk = SigningKey::from_bytes(&key.seed());
    let vk = sk.verifying_key();
    let budget_bps = STREAM_BPS * BUDGET / 8.0;
    println!("## Signed parts: encodings against the budgets (`bench/parts.sh`)\n");
    println!(
        "Each candidate signed with Ed25519 and verified strictly (`verify_strict`), {ITERS} times, on this \
         machine. Scenario: 1 s segments, {PART_MS} ms parts, a 1 Mb/s stream (video 936 kb/s + audio 64 kb/s), \
         the default 8-segment window; a viewer fetches the statements of one video and the audio track. \
         Budgets (signed-parts issue): sign + verify ≤ 1 ms per part; signed metadata ≤ 2 % of the stream \
         ({budget_bps:.0} B/s).\n"
    );
    println!("| encoding | bytes each | per second | B/s | % of 1 Mb/s | sign + verify, µs | within both budgets |");
    println!("|---|---|---|---|---|---|---|");
    for c in candidates(&key) {
        let wire = (c.sign)(&sk);
        assert!((c.verify)(&vk, &wire), "{}: does not verify", c.name);
        let start = Instant::now();
        for _ in 0..ITERS {
            let w = (c.sign)(&sk);
            assert!((c.verify)(&vk, &w));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(ITERS);
        let bps = wire.len() as f64 * c.per_second;
        let share = bps * 8.0 / STREAM_BPS;
        let ok = share <= BUDGET && us <= 1000.0;
        println!(
            "| {} ({}) | {} | {} | {:.0} | {:.2} % | {:.0} | {} |",
            c.name,
            c.how,
            wire.len(),
            c.per_second,
            bps,
            share * 100.0,
            us,
            if ok { "yes" } else { "**no**" }
        );
    }
}
