//! LL-HLS from the origin, as an LL-HLS player uses it: a real ffmpeg push into `hlswarm run`
//! with 1 s segments and 200 ms parts, then the playlist's LL tags, blocking reloads (answered
//! by the part asked for, 400 for the two malformed asks), a delta update, parts whose bytes
//! match their names and make up their segment exactly, the PART statements a verifying page
//! asks for with the playlist (verified, chained; a forged and a replayed one refused), the
//! preload hint's part, and ffmpeg (a classic player) decoding the same URL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Node, SECRET, ffmpeg_decodes, publish, verify_in, wait_for};
use manifest_signer::part::PartChain;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn bytes(url: &str) -> Vec<u8> {
    let r = reqwest::get(url).await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

/// `KEY=value` of a tag line's attribute list (values may be quoted).
fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let list = line.split_once(':')?.1;
    list.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

/// (msn, part) the preload hint names: `part/<rendition>/<msn>.<part>.m4s`.
fn hint(playlist: &str) -> (u64, u16, String) {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .unwrap_or_else(|| panic!("no preload hint: {playlist}"));
    let uri = attr(line, "URI").unwrap().to_owned();
    let name = uri.rsplit('/').next().unwrap().strip_suffix(".m4s").unwrap();
    let (m, p) = name.split_once('.').unwrap();
    (m.parse().unwrap(), p.parse().unwrap(), uri)
}

/// The parts listed before each segment URI: (segment URI, part URIs).
fn segments_with_parts(playlist: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for l in playlist.lines() {
        if l.starts_with("#EXT-X-PART:") {
            parts.push(attr(l, "URI").unwrap().to_owned());
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push((l.to_owned(), std::mem::take(&mut parts)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_serves_ll_hls_with_blocking_reloads_and_exact_parts() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--part-ms", "200"]);
    let id = node.stream_id.clone();
    let mut push = publish(&node.rtmp_url(SECRET), 16, "320x240");
    let base = node.url(&format!("/streams/{id}/"));
    let playlist = format!("{base}source.m3u8");

    // Enough window for a delta update (CAN-SKIP-UNTIL is 6 s).
    let text = wait_for("8 segments with parts", Duration::from_secs(40), || async {
        let (status, text) = get(&playlist).await;
        (status == 200 && text.matches("#EXTINF").count() >= 8 && text.contains("#EXT-X-PART:")).then_some(text)
    })
    .await;
    for tag in [
        "#EXT-X-VERSION:6\n",
        "#EXT-X-TARGETDURATION:1\n",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.660\n",
        "#EXT-X-PART-INF:PART-TARGET=0.220\n",
        "#EXT-X-PROGRAM-DATE-TIME:",
        ",INDEPENDENT=YES\n",
        "#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=",
    ] {
        assert!(text.contains(tag), "{tag} in {text}");
    }
    // The video and the audio of a cut are signed in one manifest: neither runs ahead.
    for _ in 0..3 {
        let m = common::manifest(&node, &id.parse().unwrap()).await.unwrap();
        let last = |name: &str| m.body.rendition(name).and_then(|r| r.segments.last()).map(|s| s.seq);
        assert_eq!(last("source"), last("audio"), "manifest {}", m.body.seq);
    }
    for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let d: f64 = attr(l, "DURATION").unwrap().parse().unwrap();
        assert!(d > 0.0 && d <= 0.220, "PART DURATION within PART-TARGET: {l}");
    }

    // A complete segment with its parts listed: each part's bytes match its name, and the
    // segment is exactly their concatenation.
    let (seg, parts) = segments_with_parts(&text)
        .into_iter()
        .rev()
        .find(|(s, p)| s.starts_with("seg/") && !p.is_empty())
        .expect("a complete segment with parts");
    let mut joined = Vec::new();
    for p in &parts {
        let b = bytes(&format!("{base}{p}")).await;
        let hex = p.trim_start_matches("seg/").trim_end_matches(".m4s");
        assert_eq!(blake3::hash(&b).to_hex().as_str(), hex, "{p}");
        joined.extend(b);
    }
    assert_eq!(joined, bytes(&format!("{base}{seg}")).await, "{seg} is its parts");

    // Blocking reload for the part the hint names: answered once it exists, and listed.
    let (msn, part, uri) = hint(&text);
    let (status, next) = get(&format!("{playlist}?_HLS_msn={msn}&_HLS_part={part}")).await;
    assert_eq!(status, 200, "{next}");
    let (m2, p2, _) = hint(&next);
    assert!((m2, p2) > (msn, part), "the playlist moved past {msn}.{part}: {next}");
    // The hinted part by position is the part the newer playlist lists (or its segment's).
    let hinted = bytes(&format!("{base}{uri}")).await;
    let listed: Vec<String> = next
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .map(|l| attr(l, "URI").unwrap().to_owned())
        .collect();
    let name = format!("seg/{}.m4s", blake3::hash(&hinted).to_hex());
    assert!(listed.contains(&name), "{name} listed in {next}");

    // The statements of the listed parts come with the playlist when asked: each verifies
    // against the stream id, chains, and names the bytes served; a forged one and a replayed
    // one are refused.
    let (_, with) = get(&format!("{playlist}?hlswarm_parts=-")).await;
    let stream: manifest_signer::StreamId = id.parse().unwrap();
    let mut chain = PartChain::new(stream);
    let mut verified = std::collections::HashMap::new();
    let wires: Vec<Vec<u8>> = with
        .lines()
        .filter_map(|l| l.strip_prefix("#HLSWARM-PART:"))
        .map(|b| URL_SAFE_NO_PAD.decode(b).unwrap())
        .collect();
    assert!(wires.len() >= 5, "{with}");
    for w in &wires {
        let p = chain.accept_wire(w).unwrap();
        assert_eq!(p.body.rendition, "source");
        verified.insert(format!("seg/{}.m4s", p.body.hash), p);
    }
    for l in with.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let uri = attr(l, "URI").unwrap();
        let p = verified.get(uri).unwrap_or_else(|| panic!("no statement for {uri}"));
        assert_eq!(p.body.independent, l.contains("INDEPENDENT=YES"), "{l}");
    }
    // The last listed part is held: its bytes are what its statement signs.
    let uri = with
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| attr(l, "URI"))
        .next_back()
        .unwrap()
        .to_owned();
    verified[&uri]
        .check_bytes(&bytes(&format!("{base}{uri}")).await)
        .unwrap();
    let last = wires.last().unwrap();
    assert_eq!(chain.accept_wire(last).unwrap_err().code(), "replay");
    let mut forged = last.clone();
    forged[40] ^= 1; // a byte of the hash
    assert_eq!(
        PartChain::new(stream).accept_wire(&forged).unwrap_err().code(),
        "bad_signature"
    );
    // Incremental: only what follows the position asked for.
    let after = &verified[&uri].body;
    let (_, newer) = get(&format!("{playlist}?hlswarm_parts={}.{}", after.seq, after.part)).await;
    assert!(newer.matches("#HLSWARM-PART:").count() < wires.len(), "{newer}");

    // RFC 8216bis: 400 for a segment more than two ahead, and for _HLS_part without _HLS_msn.
    assert_eq!(get(&format!("{playlist}?_HLS_msn={}", msn + 10)).await.0, 400);
    assert_eq!(get(&format!("{playlist}?_HLS_part=1")).await.0, 400);

    // A delta update leaves out what is more than 6 s old.
    let (status, delta) = get(&format!("{playlist}?_HLS_skip=YES")).await;
    assert_eq!(status, 200);
    assert!(
        delta.contains("#EXT-X-VERSION:9\n") && delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="),
        "{delta}"
    );

    // The audio rendition has parts of its own; a classic player plays the same URLs.
    let (_, audio) = get(&format!("{base}audio.m3u8")).await;
    assert!(
        audio.contains("#EXT-X-PART:") && audio.contains("#EXT-X-RENDITION-REPORT:URI=\"source.m3u8\""),
        "{audio}"
    );
    // ffmpeg's normal exit unpublishes: the stream ends at once.
    assert!(push.wait().unwrap().success());
    let ended = wait_for("the end of the stream", Duration::from_secs(40), || async {
        let (_, text) = get(&playlist).await;
        text.ends_with("#EXT-X-ENDLIST\n").then_some(text)
    })
    .await;
    assert!(!ended.contains("PRELOAD-HINT"), "{ended}");
    ffmpeg_decodes(None, &format!("{base}master.m3u8")).unwrap();
    // `hlswarm verify` checks the classic playlist inside and the parts against their segments.
    let report = verify_in(None, &base, &[]).unwrap();
    assert!(
        report.contains("segments are exactly the parts listed for them"),
        "{report}"
    );
    // Every part's signing delay (from the RTMP message completing it) is measured.
    let signed = common::metric(&node, "hlswarm_part_signing_seconds_count").await;
    assert!(signed > 20.0, "parts timed: {signed}");
    assert!(node.stop().success());
}
