//! Seeders serve the same LL-HLS as the origin: a real ffmpeg push into `hlswarm run` (1 s
//! segments, 200 ms parts), `hlswarm seed` nodes on a loopback swarm that get each PART
//! statement by gossip and its bytes from the peer that forwarded it, verify both, and serve
//! the parts in LL-HLS playlists byte-identical to the origin's; the segments it relayed as
//! parts it stores from them. The watch page, opened on the seeder in headless Chromium, plays
//! LL-HLS from the seeder with every part verified. A seeder that flips bytes
//! (`--misbehave flip`) is refused and banned by a seeder that knew only it, which still
//! serves verified parts.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::browser::{Browser, num};
use common::{Node, SECRET, metric, publish, wait_for};

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// The part URIs listed after the playlist's last segment URI: the segment in progress.
fn in_progress_parts(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in playlist.lines() {
        if let Some(uri) = l
            .strip_prefix("#EXT-X-PART:")
            .and_then(|a| a.split("URI=\"").nth(1))
            .and_then(|u| u.split('"').next())
        {
            out.push(uri.to_owned());
        } else if !l.starts_with('#') && !l.is_empty() {
            out.clear();
        }
    }
    out
}

/// (msn, part) the preload hint names.
fn hint(playlist: &str) -> Option<(u64, u16)> {
    let line = playlist.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let name = line.rsplit('/').next()?.strip_suffix(".m4s\"")?;
    let (m, p) = name.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// Every part the playlist lists, fetched from `base`: its bytes match its name.
async fn check_parts(base: &str, playlist: &str) -> usize {
    let mut n = 0;
    for uri in playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|a| a.split("URI=\"").nth(1)?.split('"').next())
    {
        let r = reqwest::get(format!("{base}{uri}")).await.unwrap();
        assert!(r.status().is_success(), "{uri}: {}", r.status());
        let b = r.bytes().await.unwrap();
        let hex = uri.trim_start_matches("seg/").trim_end_matches(".m4s");
        assert_eq!(blake3::hash(&b).to_hex().as_str(), hex, "{base}{uri}");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn seeders_serve_the_origins_ll_hls_from_verified_parts() {
    let odata = tempfile::tempdir().unwrap();
    let origin = Node::start(odata.path(), &["--segment-seconds", "1", "--part-ms", "200"]);
    let id = origin.stream_id.clone();
    let watch = origin.url(&format!("/watch/{id}"));
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let seeder = Node::seed(dirs[0].path(), &watch, &[]);
    let flipper = Node::seed(dirs[1].path(), &watch, &["--misbehave", "flip"]);
    let mut push = publish(&origin.rtmp_url(SECRET), 40, "320x240");

    let obase = origin.url(&format!("/streams/{id}/"));
    let sbase = seeder.url(&format!("/streams/{id}/"));
    // The seeder lists parts of the segment in progress: parts crossed the swarm ahead of
    // their segment's manifest.
    let text = wait_for(
        "the seeder lists parts in progress",
        Duration::from_secs(40),
        || async {
            let (status, text) = get(&format!("{sbase}source.m3u8")).await;
            (status == 200 && !in_progress_parts(&text).is_empty()).then_some(text)
        },
    )
    .await;
    assert!(
        text.contains("#EXT-X-PART-INF:PART-TARGET=0.220\n"),
        "signed PART-TARGET: {text}"
    );
    assert!(check_parts(&sbase, &text).await > 0);

    // Byte-identical to the origin's: both asked to block for the same next part answer with
    // the same state (a manifest signed between the two answers can differ: a few tries).
    let mut same = false;
    for _ in 0..8 {
        let (_, now) = get(&format!("{obase}source.m3u8")).await;
        let Some((m, p)) = hint(&now) else { continue };
        let ask = format!("source.m3u8?_HLS_msn={m}&_HLS_part={p}");
        let (ou, su) = (format!("{obase}{ask}"), format!("{sbase}{ask}"));
        let (o, s) = tokio::join!(get(&ou), get(&su));
        assert_eq!((o.0, s.0), (200, 200), "origin {}\nseeder {}", o.1, s.1);
        if o.1 == s.1 {
            same = true;
            break;
        }
    }
    assert!(
        same,
        "the seeder's LL-HLS playlist equals the origin's for the same signed state"
    );
    assert!(metric(&seeder, "hlswarm_swarm_parts_in_total").await > 10.0);
    // Segments it relayed as parts are stored from them, not downloaded a second time.
    assert!(metric(&seeder, "hlswarm_swarm_segments_from_parts_total").await > 0.0);
    // `hlswarm verify` of the seeder: its LL playlists hold the signed classic ones, and every
    // complete segment is exactly its parts.
    let report = common::verify_in(None, &sbase, &[]).unwrap();
    assert!(
        report.contains("segments are exactly the parts listed for them"),
        "{report}"
    );

    // The watch page on the seeder: LL-HLS from the seeder's own node, every part verified.
    let mut page = tokio::task::block_in_place(|| Browser::open(&seeder.url(&format!("/watch/{id}")), &[]));
    let s = tokio::task::block_in_place(|| {
        page.wait("LL-HLS playback from the seeder", Duration::from_secs(60), |s| {
            num(s, "currentTime") >= 3.0 && num(s, "verifiedParts") >= 15.0 && !s["latency"].is_null()
        })
    });
    assert_eq!(s["mode"], "ll", "{s}");
    assert!(s["fatalError"].is_null(), "{s}");
    assert_eq!(num(&s, "unverifiedLoaded"), 0.0, "{s}");
    assert_eq!(num(&s, "partFailures") + num(&s, "segmentFailures"), 0.0, "{s}");
    drop(page);

    // A seeder that knows only the flipper: its first parts come flipped, are refused, and the
    // flipper is banned; it then finds the others and serves verified parts.
    let victim = Node::seed(dirs[2].path(), &id, &["--peer", &flipper.p2p[0]]);
    let vbase = victim.url(&format!("/streams/{id}/"));
    let text = wait_for(
        "the victim lists parts in progress",
        Duration::from_secs(40),
        || async {
            let (status, text) = get(&format!("{vbase}source.m3u8")).await;
            (status == 200 && !in_progress_parts(&text).is_empty()).then_some(text)
        },
    )
    .await;
    assert!(check_parts(&vbase, &text).await > 0);
    assert!(
        metric(&victim, "hlswarm_swarm_peers_banned_total").await >= 1.0,
        "the flipper is banned"
    );
    assert!(metric(&victim, "hlswarm_swarm_parts_in_total").await > 0.0);
    assert!(push.wait().unwrap().success(), "ffmpeg push");
}
