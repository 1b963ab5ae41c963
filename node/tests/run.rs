//! `hlswarm run` end to end: real ffmpeg pushes RTMP, the node signs HLS, SIGTERM finishes the
//! current segment, and the result verifies and decodes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};

use common::{Node, SECRET, publish, verify_archive};

#[test]
fn ffmpeg_rtmp_push_becomes_signed_verified_hls() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1"]);
    let id = node.stream_id.clone();

    // A second node on the same data directory is refused before it touches anything.
    let second = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "run",
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--no-swarm",
            "--no-moq",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("another hlswarm node is using the data directory"),
        "{err}"
    );

    let wrong = Command::new("ffmpeg")
        .args([
            "-v",
            "quiet",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "1",
        ])
        .args(["-c:v", "libx264", "-f", "flv"])
        .arg(node.rtmp_url("wrong-key"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(!wrong.success(), "an unknown stream key is refused");

    let push = publish(&node.rtmp_url(SECRET), 4, "320x240")
        .wait_with_output()
        .unwrap();
    assert!(push.status.success(), "ffmpeg publishes");

    // Graceful stop: SIGTERM finishes and signs what is pending.
    let status = node.stop();
    assert!(status.success(), "node exits cleanly on SIGTERM: {status:?}");

    let report = verify_archive(data.path());
    let segments: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("live window "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(segments >= 3, "4 s at 1 s segments: {report}");

    // A stock player reads the signed playlist unchanged.
    let master = data.path().join("streams").join(&id).join("master.m3u8");
    let probe = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&master)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        probe.status.success() && probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let master_text = std::fs::read_to_string(&master).unwrap();
    assert!(
        master_text.contains("CODECS=\"avc1.") && master_text.contains("RESOLUTION=320x240"),
        "{master_text}"
    );
}
