//! Protocol test vectors: valid and invalid keys, objects, chains, segments, proofs and
//! playlists, each invalid case with the error code a verifier must report. Deterministic:
//! fixed keys and times, and Ed25519 signatures are deterministic.
//!
//! Written to `tests/vectors/` by `cargo run -p manifest-signer --example gen-vectors -- tests/vectors`
//! and checked by `cargo test -p manifest-signer --test vectors`; the web verifier runs the same files.

use serde_json::{Map, Value, json};

#[path = "part_vectors.rs"]
mod part_vectors;
pub use part_vectors::part_bytes;

use crate::merkle::{LogEntry, MerkleLog};
use crate::objects::{sign_raw, to_envelope};
use crate::playlist::{render_master, render_media};
use crate::{
    BlobRef, Container, Hash, Hints, LogHead, ManifestRoot, Rendition, RenditionKind, Result, SegmentRef, Signed,
    StreamAnnounce, StreamKey,
};

/// One test vector: a file name and its JSON.
pub type Vector = (String, Value);

/// Deterministic key for vectors: seed = BLAKE3 of the label.
pub fn test_key(label: &str) -> StreamKey {
    StreamKey::from_seed(*blake3::hash(label.as_bytes()).as_bytes())
}

const T0: u64 = 1_795_000_000_000;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn case(name: &str, description: &str, kind: &str, expect: Value, mut fields: Map<String, Value>) -> Vector {
    fields.insert("name".into(), json!(name));
    fields.insert("description".into(), json!(description));
    fields.insert("kind".into(), json!(kind));
    fields.insert("expect".into(), expect);
    (format!("{name}.json"), Value::Object(fields))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Segment payloads used by the vectors.
fn segment_bytes(i: u64) -> Vec<u8> {
    let mut b = format!("hlswarm test segment {i} ").into_bytes();
    b.resize(200 + i as usize * 17, (i % 251) as u8);
    b
}

fn manifest_body(
    key: &StreamKey,
    seq: u64,
    prev: Option<Hash>,
    first: u64,
    count: u64,
    log: &MerkleLog,
) -> ManifestRoot {
    let init = b"hlswarm test init segment";
    let init_ref = BlobRef {
        hash: Hash::of(init),
        size: init.len() as u64,
    };
    let segments = (first..first + count)
        .map(|i| {
            let data = segment_bytes(i);
            SegmentRef {
                seq: i,
                dur_us: 2_000_000,
                hash: Hash::of(&data),
                size: data.len() as u64,
                disc: i == 3,
                pdt_ms: Some(T0 + i * 2000),
                init: Some(init_ref.hash),
                independent: None,
            }
        })
        .collect();
    ManifestRoot {
        stream: key.stream_id(),
        seq,
        time_ms: T0 + seq * 2000,
        prev,
        renditions: vec![Rendition {
            name: "source".into(),
            container: Container::Fmp4,
            target_duration: 2,
            disc_seq: 0,
            init: Some(init_ref),
            segments,
            ended: false,
            codecs: Some("avc1.64001f,mp4a.40.2".into()),
            bandwidth: None,
            average_bandwidth: None,
            resolution: Some("1280x720".into()),
            frame_rate_milli: Some(30_000),
            kind: None,
            channels: None,
            part_target_us: None,
        }],
        log: LogHead {
            size: log.len(),
            root: log.root(),
        },
    }
}

fn log_of(n: u64) -> Result<(MerkleLog, Vec<LogEntry>)> {
    let mut log = MerkleLog::new();
    let mut entries = Vec::new();
    let init = Hash::of(b"hlswarm test init segment");
    for i in 0..n {
        let data = segment_bytes(i);
        let e = LogEntry {
            rendition: "source".into(),
            segment: SegmentRef {
                seq: i,
                dur_us: 2_000_000,
                hash: Hash::of(&data),
                size: data.len() as u64,
                disc: i == 3,
                pdt_ms: Some(T0 + i * 2000),
                init: Some(init),
                independent: None,
            },
        };
        log.push(e.leaf_hash()?);
        entries.push(e);
    }
    Ok((log, entries))
}

/// Protocol 1.4: a demuxed stream, video in `source` and audio in `audio` (kind audio), the
/// same three segment numbers in each, as its first manifest with the log of both.
fn audio_group_body(key: &StreamKey) -> Result<ManifestRoot> {
    let rendition = |name: &str, init: &[u8], payload: fn(u64) -> Vec<u8>| {
        let init = BlobRef {
            hash: Hash::of(init),
            size: init.len() as u64,
        };
        let segments = (0..3u64)
            .map(|i| {
                let data = payload(i);
                SegmentRef {
                    seq: i,
                    dur_us: 2_000_000,
                    hash: Hash::of(&data),
                    size: data.len() as u64,
                    disc: false,
                    pdt_ms: Some(T0 + i * 2000),
                    init: Some(init.hash),
                    independent: None,
                }
            })
            .collect();
        Rendition {
            init: Some(init),
            segments,
            ..Rendition::new(name, Container::Fmp4, 2)
        }
    };
    let video = Rendition {
        codecs: Some("avc1.64001f".into()),
        bandwidth: Some(2_500_000),
        average_bandwidth: Some(2_300_000),
        resolution: Some("1280x720".into()),
        frame_rate_milli: Some(30_000),
        ..rendition("source", b"hlswarm test init segment", segment_bytes)
    };
    let audio = Rendition {
        codecs: Some("mp4a.40.2".into()),
        bandwidth: Some(130_000),
        average_bandwidth: Some(128_000),
        kind: Some(RenditionKind::Audio),
        channels: Some(2),
        ..rendition("audio", b"hlswarm test audio init segment", audio_segment_bytes)
    };
    let mut log = MerkleLog::new();
    for i in 0..3 {
        for r in [&video, &audio] {
            let e = LogEntry {
                rendition: r.name.clone(),
                segment: r.segments[i].clone(),
            };
            log.push(e.leaf_hash()?);
        }
    }
    Ok(ManifestRoot {
        stream: key.stream_id(),
        seq: 0,
        time_ms: T0,
        prev: None,
        renditions: vec![video, audio],
        log: LogHead {
            size: log.len(),
            root: log.root(),
        },
    })
}

/// Audio segment payloads of the 1.4 vectors.
fn audio_segment_bytes(i: u64) -> Vec<u8> {
    let mut b = format!("hlswarm test audio segment {i} ").into_bytes();
    b.resize(60 + i as usize * 5, (i % 251) as u8);
    b
}

fn announce_body(key: &StreamKey, seq: u64) -> StreamAnnounce {
    StreamAnnounce {
        stream: key.stream_id(),
        seq,
        time_ms: T0,
        expires_ms: T0 + 3_600_000,
        title: "Test \"stream\" — ünïcödé\n".into(),
        renditions: vec![crate::AnnounceRendition {
            name: "source".into(),
            codecs: "avc1.64001f,mp4a.40.2".into(),
            bandwidth: Some(3_000_000),
            resolution: Some("1280x720".into()),
            frame_rate_milli: Some(30_000),
        }],
        hints: Hints {
            http: vec!["http://127.0.0.1:8080/".into()],
            libp2p: vec![],
            trackers: vec!["ws://127.0.0.1:8080/tracker".into()],
            moq: vec![],
        },
        tip: Some("tips@example.com".into()),
    }
}

/// Every vector, in a stable order.
pub fn generate() -> Result<Vec<Vector>> {
    let a = test_key("hlswarm test vector key A");
    let b = test_key("hlswarm test vector key B");
    let ida = a.stream_id().to_string();
    let mut out = Vec::new();

    // Keys.
    for (label, key) in [("A", &a), ("B", &b)] {
        out.push(case(
            &format!("key-{label}"),
            "stream_id is the unpadded base64url of the Ed25519 public key derived from this RFC 8032 seed",
            "key",
            json!("ok"),
            obj(json!({"seed_hex": hex(&key.seed()), "stream_id": key.stream_id().to_string()})),
        ));
    }

    // Canonical JSON.
    for (name, input, expect) in [
        (
            "canonical-ok-escapes",
            "{\"a\":[true,false],\"b\":\"q\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/é€😀\",\"c\":9007199254740991}",
            "ok",
        ),
        ("canonical-bad-whitespace", "{\"a\": 1}", "non_canonical"),
        ("canonical-bad-key-order", "{\"b\":1,\"a\":1}", "non_canonical"),
        ("canonical-bad-float", "{\"a\":1.0}", "non_canonical"),
        ("canonical-bad-negative", "{\"a\":-1}", "non_canonical"),
        ("canonical-bad-too-large", "{\"a\":9007199254740992}", "non_canonical"),
        ("canonical-bad-null", "{\"a\":null}", "non_canonical"),
        ("canonical-bad-escaped-slash", "{\"a\":\"\\/\"}", "non_canonical"),
        ("canonical-bad-unicode-escape", "{\"a\":\"\\u00e9\"}", "non_canonical"),
        ("canonical-bad-upper-hex-escape", "{\"a\":\"\\u001F\"}", "non_canonical"),
        ("canonical-bad-duplicate-key", "{\"a\":1,\"a\":1}", "non_canonical"),
        ("canonical-bad-truncated", "{\"a\":", "malformed"),
    ] {
        out.push(case(
            name,
            "canonical JSON acceptance",
            "canonical",
            json!(expect),
            obj(json!({"input": input})),
        ));
    }

    // Manifests and chains.
    let (log2, _) = log_of(2)?;
    let (log3, _) = log_of(3)?;
    let (log4, _) = log_of(4)?;
    let m0 = Signed::sign(manifest_body(&a, 0, None, 0, 2, &log2), &a)?;
    let m1 = Signed::sign(manifest_body(&a, 1, Some(m0.id), 0, 3, &log3), &a)?;
    let m2 = Signed::sign(manifest_body(&a, 2, Some(m1.id), 1, 3, &log4), &a)?;
    let manifest_case = |name: &str, desc: &str, wire: &[u8], expect: &str, id: Option<Hash>| {
        let mut f = obj(json!({"stream": ida, "wire": text(wire)}));
        if let Some(id) = id {
            f.insert("id".into(), json!(id.to_hex()));
        }
        case(name, desc, "manifest", json!(expect), f)
    };
    out.push(manifest_case(
        "manifest-ok-first",
        "first manifest of a stream (seq 0, no prev)",
        m0.wire(),
        "ok",
        Some(m0.id),
    ));
    out.push(manifest_case(
        "manifest-ok-second",
        "seq 1 chained to seq 0",
        m1.wire(),
        "ok",
        Some(m1.id),
    ));

    let mut flipped = m0.wire().to_vec();
    if let Some(pos) = find(&flipped, b"\"sig\":\"") {
        let i = pos + 7;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    }
    out.push(manifest_case(
        "manifest-bad-signature-flipped",
        "one signature character changed",
        &flipped,
        "bad_signature",
        None,
    ));

    let mut env = to_envelope(&m0.body)?;
    env.insert(
        "sig".into(),
        json!(text(
            &m0.wire()[find(m0.wire(), b"\"sig\":\"").unwrap_or(0) + 7..][..86]
        )),
    );
    env["time_ms"] = json!(T0 + 1);
    let tampered = crate::canonical::to_canonical(&Value::Object(env))?;
    out.push(manifest_case(
        "manifest-bad-tampered-field",
        "time_ms changed after signing, signature kept",
        &tampered,
        "bad_signature",
        None,
    ));

    let forged = sign_raw::<ManifestRoot>(to_envelope(&m0.body)?, &b)?;
    out.push(manifest_case(
        "manifest-bad-forged",
        "names stream A but is signed with key B",
        &forged,
        "bad_signature",
        None,
    ));

    let other = Signed::sign(manifest_body(&b, 0, None, 0, 2, &log2), &b)?;
    out.push(manifest_case(
        "manifest-bad-wrong-key",
        "a valid manifest of stream B where stream A is expected",
        other.wire(),
        "wrong_key",
        None,
    ));

    let mut v2 = to_envelope(&m0.body)?;
    v2["v"] = json!(2);
    out.push(manifest_case(
        "manifest-bad-unknown-version",
        "v = 2, validly signed",
        &sign_raw::<ManifestRoot>(v2, &a)?,
        "unknown_version",
        None,
    ));

    let ann = Signed::sign(announce_body(&a, 0), &a)?;
    out.push(manifest_case(
        "manifest-bad-wrong-type",
        "a STREAM_ANNOUNCE offered as a MANIFEST_ROOT",
        ann.wire(),
        "wrong_type",
        None,
    ));

    let mut spaced = m0.wire().to_vec();
    spaced.insert(1, b' ');
    out.push(manifest_case(
        "manifest-bad-non-canonical",
        "a space inserted after the opening brace",
        &spaced,
        "non_canonical",
        None,
    ));

    let mut extra = to_envelope(&m0.body)?;
    extra.insert("zz_extra".into(), json!(1));
    out.push(manifest_case(
        "manifest-bad-unknown-field",
        "an unknown field, validly signed",
        &sign_raw::<ManifestRoot>(extra, &a)?,
        "malformed",
        None,
    ));

    let mut nowin = to_envelope(&m0.body)?;
    nowin.remove("log");
    out.push(manifest_case(
        "manifest-bad-missing-field",
        "no log head, validly signed",
        &sign_raw::<ManifestRoot>(nowin, &a)?,
        "malformed",
        None,
    ));

    let mut gap = m1.body.clone();
    gap.renditions[0].segments.remove(1);
    let gap = sign_raw::<ManifestRoot>(to_envelope(&gap)?, &a)?;
    out.push(manifest_case(
        "manifest-bad-window-gap",
        "window sequence numbers not consecutive, validly signed",
        &gap,
        "malformed",
        None,
    ));

    let mut big = m0.body.clone();
    big.renditions[0].codecs = Some("x".repeat(200));
    let big = sign_raw::<ManifestRoot>(to_envelope(&big)?, &a)?;
    out.push(manifest_case(
        "manifest-bad-oversize-codecs",
        "codecs longer than 128 bytes, validly signed",
        &big,
        "oversize",
        None,
    ));

    let mut huge = to_envelope(&m0.body)?;
    huge.insert("pad".into(), json!("p".repeat(300 * 1024)));
    let huge = sign_raw::<ManifestRoot>(huge, &a)?;
    out.push(manifest_case(
        "manifest-bad-oversize-object",
        "wire bytes above 256 KiB",
        &huge,
        "oversize",
        None,
    ));

    // Protocol 1.4 rendition fields, validly signed, each wrong in one way.
    let mut video_kind = to_envelope(&m0.body)?;
    video_kind["renditions"][0]["kind"] = json!("video");
    out.push(manifest_case(
        "manifest-bad-unknown-kind",
        "a rendition with kind \"video\" (the only kind is \"audio\"), validly signed",
        &sign_raw::<ManifestRoot>(video_kind, &a)?,
        "malformed",
        None,
    ));
    let mut no_kind = m0.body.clone();
    no_kind.renditions[0].channels = Some(2);
    out.push(manifest_case(
        "manifest-bad-channels-without-kind",
        "a rendition with channels but no kind audio, validly signed",
        &sign_raw::<ManifestRoot>(to_envelope(&no_kind)?, &a)?,
        "malformed",
        None,
    ));
    let mut too_many = m0.body.clone();
    too_many.renditions[0].kind = Some(RenditionKind::Audio);
    too_many.renditions[0].channels = Some(65);
    out.push(manifest_case(
        "manifest-bad-channels-out-of-range",
        "an audio rendition with 65 channels (1 to 64 allowed), validly signed",
        &sign_raw::<ManifestRoot>(to_envelope(&too_many)?, &a)?,
        "malformed",
        None,
    ));

    let chain_case = |name: &str, desc: &str, wires: &[&[u8]], expect: &[&str]| {
        case(
            name,
            desc,
            "manifest_chain",
            json!(expect),
            obj(json!({"stream": ida, "wires": wires.iter().map(|w| text(w)).collect::<Vec<_>>()})),
        )
    };
    out.push(chain_case(
        "chain-ok",
        "three manifests in order",
        &[m0.wire(), m1.wire(), m2.wire()],
        &["ok", "ok", "ok"],
    ));
    out.push(chain_case(
        "chain-ok-gap",
        "a missed manifest (gossip loss) is accepted",
        &[m0.wire(), m2.wire()],
        &["ok", "ok"],
    ));
    out.push(chain_case(
        "chain-bad-replay-old",
        "an older manifest after a newer one",
        &[m0.wire(), m1.wire(), m0.wire()],
        &["ok", "ok", "replay"],
    ));
    out.push(chain_case(
        "chain-bad-replay-same",
        "the same manifest twice",
        &[m0.wire(), m1.wire(), m1.wire()],
        &["ok", "ok", "replay"],
    ));
    let bad_prev = Signed::sign(
        manifest_body(&a, 1, Some(Hash::of(b"not the previous")), 0, 3, &log3),
        &a,
    )?;
    out.push(chain_case(
        "chain-bad-prev",
        "seq 1 whose prev does not name seq 0",
        &[m0.wire(), bad_prev.wire()],
        &["ok", "chain_break"],
    ));
    let mut fork = manifest_body(&a, 1, Some(m0.id), 0, 3, &log3);
    fork.time_ms += 1;
    let fork = Signed::sign(fork, &a)?;
    out.push(chain_case(
        "chain-bad-equivocation",
        "two different validly signed manifests with seq 1: both kept as evidence",
        &[m0.wire(), m1.wire(), fork.wire()],
        &["ok", "ok", "equivocation"],
    ));
    let shrunk = Signed::sign(manifest_body(&a, 2, Some(m1.id), 0, 2, &log2), &a)?;
    out.push(chain_case(
        "chain-bad-log-shrank",
        "the log gets smaller",
        &[m0.wire(), m1.wire(), shrunk.wire()],
        &["ok", "ok", "chain_break"],
    ));

    // Announces.
    let ann_case = |name: &str, desc: &str, wire: &[u8], now: u64, expect: &str| {
        case(
            name,
            desc,
            "announce",
            json!(expect),
            obj(json!({"stream": ida, "wire": text(wire), "now_ms": now})),
        )
    };
    out.push(ann_case(
        "announce-ok",
        "a fresh announce with hints and a tip address",
        ann.wire(),
        T0 + 1000,
        "ok",
    ));
    out.push(ann_case(
        "announce-bad-expired",
        "now is past expires_ms",
        ann.wire(),
        T0 + 3_600_001,
        "expired",
    ));
    let mut long_title = to_envelope(&ann.body)?;
    long_title["title"] = json!("t".repeat(300));
    out.push(ann_case(
        "announce-bad-oversize-title",
        "a 300-byte title, validly signed",
        &sign_raw::<StreamAnnounce>(long_title, &a)?,
        T0,
        "oversize",
    ));
    let forged_ann = sign_raw::<StreamAnnounce>(to_envelope(&ann.body)?, &b)?;
    out.push(ann_case(
        "announce-bad-forged",
        "names stream A, signed with key B",
        &forged_ann,
        T0,
        "bad_signature",
    ));

    // Segments.
    let data = segment_bytes(0);
    out.push(case(
        "segment-ok",
        "bytes whose BLAKE3 is the hash in manifest-ok-first",
        "segment",
        json!("ok"),
        obj(json!({"hash": Hash::of(&data).to_hex(), "data_hex": hex(&data)})),
    ));
    let mut bad = data.clone();
    bad[10] ^= 1;
    out.push(case(
        "segment-bad-flipped-bit",
        "one bit flipped",
        "segment",
        json!("hash_mismatch"),
        obj(json!({"hash": Hash::of(&data).to_hex(), "data_hex": hex(&bad)})),
    ));

    // Merkle proofs over a 7-entry log.
    let (log7, entries7) = log_of(7)?;
    let root7 = log7.root();
    for i in [0u64, 3, 6] {
        let proof = log7.inclusion_proof(i, 7)?;
        out.push(case(
            &format!("inclusion-ok-{i}"),
            "entry i of a 7-entry log",
            "inclusion",
            json!("ok"),
            obj(json!({"entry": entries7[i as usize], "proof": proof, "root": root7.to_hex()})),
        ));
    }
    let proof = log7.inclusion_proof(3, 7)?;
    out.push(case(
        "inclusion-bad-wrong-entry",
        "the proof of entry 3 presented for entry 4",
        "inclusion",
        json!("invalid_proof"),
        obj(json!({"entry": entries7[4], "proof": proof, "root": root7.to_hex()})),
    ));
    for old in [1u64, 3, 4] {
        let p = log7.consistency_proof(old, 7)?;
        out.push(case(
            &format!("consistency-ok-{old}-7"),
            "a 7-entry log extends its prefix",
            "consistency",
            json!("ok"),
            obj(json!({"proof": p, "old_root": log7.root_at(old)?.to_hex(), "new_root": root7.to_hex()})),
        ));
    }
    let mut p = log7.consistency_proof(3, 7)?;
    if let Some(first) = p.path.first_mut() {
        first.0[0] ^= 1;
    }
    out.push(case(
        "consistency-bad-tampered-path",
        "one path hash changed",
        "consistency",
        json!("invalid_proof"),
        obj(json!({"proof": p, "old_root": log7.root_at(3)?.to_hex(), "new_root": root7.to_hex()})),
    ));
    let (log7b, _) = {
        let mut l = MerkleLog::new();
        for i in 0..7u64 {
            l.push(crate::merkle::leaf_hash(&i.to_be_bytes()));
        }
        (l, ())
    };
    let p = log7.consistency_proof(4, 7)?;
    out.push(case(
        "consistency-bad-forked-log",
        "a proof checked against the root of a different log",
        "consistency",
        json!("invalid_proof"),
        obj(json!({"proof": p, "old_root": log7.root_at(4)?.to_hex(), "new_root": log7b.root().to_hex()})),
    ));

    // Deterministic playlists.
    out.push(case(
        "playlist-render",
        "the playlists every node serves for the seq 2 manifest of chain-ok (byte-identical)",
        "playlist",
        json!("ok"),
        obj(json!({
            "stream": ida,
            "wire": text(m2.wire()),
            "master": render_master(&m2.body),
            "media": {"source": render_media(&m2.body.renditions[0])},
        })),
    ));
    // Protocol 1.1: measured BANDWIDTH with AVERAGE-BANDWIDTH beside it.
    let mut body = m2.body.clone();
    body.renditions[0].bandwidth = Some(1_196_202);
    body.renditions[0].average_bandwidth = Some(1_150_412);
    let m2b = Signed::sign(body, &a)?;
    out.push(case(
        "playlist-render-average-bandwidth",
        "the seq 2 manifest of chain-ok with bandwidth and average_bandwidth signed (protocol 1.1)",
        "playlist",
        json!("ok"),
        obj(json!({
            "stream": ida,
            "wire": text(m2b.wire()),
            "master": render_master(&m2b.body),
            "media": {"source": render_media(&m2b.body.renditions[0])},
        })),
    ));

    // Protocol 1.3: a segment cut without a keyframe is signed as not independent, and the
    // master then drops EXT-X-INDEPENDENT-SEGMENTS.
    let mut body = m2.body.clone();
    body.renditions[0].segments[1].independent = Some(false);
    let m2c = Signed::sign(body, &a)?;
    out.push(case(
        "playlist-render-not-independent",
        "the seq 2 manifest of chain-ok with its second window segment signed independent: false (protocol 1.3)",
        "playlist",
        json!("ok"),
        obj(json!({
            "stream": ida,
            "wire": text(m2c.wire()),
            "master": render_master(&m2c.body),
            "media": {"source": render_media(&m2c.body.renditions[0])},
        })),
    ));

    // Protocol 1.4: demuxed audio as an alternative-audio group that the video plays with.
    let ag = Signed::sign(audio_group_body(&a)?, &a)?;
    out.push(case(
        "playlist-render-audio-group",
        "video rendition source and audio rendition audio (kind audio, 2 channels) of one stream: \
         the master lists audio as EXT-X-MEDIA and source as a variant of the group, its \
         BANDWIDTH, AVERAGE-BANDWIDTH and CODECS counting the audio (protocol 1.4)",
        "playlist",
        json!("ok"),
        obj(json!({
            "stream": ida,
            "wire": text(ag.wire()),
            "master": render_master(&ag.body),
            "media": {
                "source": render_media(&ag.body.renditions[0]),
                "audio": render_media(&ag.body.renditions[1]),
            },
        })),
    ));

    // PART statements (§16).
    part_vectors::push(&mut out)?;
    part_vectors::push_manifests(&mut out, &m0.body, &a)?;

    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
