//! A broadcaster whose settings degrade the stream is told so, once, in the node's log and on
//! the dashboard (`/api/streams`), with the setting to change: real ffmpeg publishing MP3 audio
//! (dropped: no sound) with 6 s between keyframes against 1 s segments; the segments cut
//! without a keyframe are signed as such and the master then omits EXT-X-INDEPENDENT-SEGMENTS.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Node, SECRET, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn mp3_audio_and_a_long_keyframe_interval_are_shown_with_the_fix() {
    let data = tempfile::tempdir().unwrap();
    let how = common::Launch {
        keep_log: true,
        ..Default::default()
    };
    let node = Node::launch_with(data.path(), &common::RUN, &["--segment-seconds", "1"], true, how);
    let mut push = common::command(None, "ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "20"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "180",
            "-keyint_min",
            "180",
            "-sc_threshold",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "libmp3lame", "-f", "flv"])
        .arg(node.rtmp_url(SECRET))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = node.url("/api/streams");
    let advice: Vec<String> = wait_for(
        "both pieces of advice on the dashboard",
        Duration::from_secs(30),
        || {
            let req = client.get(&url);
            async move {
                let text = req.send().await.ok()?.text().await.ok()?;
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                let advice: Vec<String> = serde_json::from_value(v["node"]["publisher_advice"].clone()).ok()?;
                (advice.len() >= 2).then_some(advice)
            }
        },
    )
    .await;
    assert!(
        advice
            .iter()
            .any(|a| a.starts_with("MP3 audio is not supported") && a.contains("-c:a aac")),
        "{advice:?}"
    );
    assert!(
        advice
            .iter()
            .any(|a| a.starts_with("keyframes are 6.0 s apart") && a.contains("Keyframe Interval to 1 s")),
        "{advice:?}"
    );
    assert!(node.log_has(&["publisher: MP3 audio is not supported"]));
    assert!(node.log_has(&["publisher: keyframes are 6.0 s apart"]));

    // 6 s between keyframes and 1 s segments: a segment is cut without a keyframe after 5 s;
    // it is signed as not independent and the master stops claiming EXT-X-INDEPENDENT-SEGMENTS.
    let id: manifest_signer::StreamId = node.stream_id.parse().unwrap();
    let master_url = node.url(&format!("/streams/{id}/master.m3u8"));
    let master: String = wait_for(
        "a master without EXT-X-INDEPENDENT-SEGMENTS",
        Duration::from_secs(30),
        || {
            let req = client.get(&master_url);
            async move {
                let text = req.send().await.ok()?.text().await.ok()?;
                (text.starts_with("#EXTM3U") && !text.contains("INDEPENDENT-SEGMENTS")).then_some(text)
            }
        },
    )
    .await;
    assert!(master.contains("#EXT-X-STREAM-INF"), "{master}");
    let m = common::manifest(&node, &id).await.unwrap();
    assert!(
        m.body.renditions[0]
            .segments
            .iter()
            .any(|s| s.independent == Some(false)),
        "a segment signed as not independent: {:?}",
        m.body.renditions[0].segments
    );
    let _ = push.kill();
    let _ = push.wait();
    assert!(node.stop().success());
}
