//! `hlswarm run` end to end: real ffmpeg pushes RTMP, the node signs HLS, SIGTERM finishes the
//! current segment, and the result verifies and decodes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn ffmpeg_rtmp_push_becomes_signed_verified_hls() {
    let data = tempfile::tempdir().unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "run",
            "--rtmp",
            "127.0.0.1:0",
            "--stream-key",
            "s3cret",
            "--segment-seconds",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = node.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut id = None;
    while addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("node prints its RTMP address");
        if let Some(a) = line.strip_prefix("rtmp listening on ") {
            addr = Some(a.to_string());
        }
        if let Some(i) = line.trim().strip_prefix("stream id") {
            id = Some(i.trim().to_string());
        }
    }
    let (addr, id) = (addr.unwrap(), id.expect("prints the stream id"));

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
        .arg(format!("rtmp://{addr}/live/wrong-key"))
        .status()
        .unwrap();
    assert!(!wrong.success(), "an unknown stream key is refused");

    let push = Command::new("ffmpeg")
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
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-c:a", "aac", "-f", "flv",
        ])
        .arg(format!("rtmp://{addr}/live/s3cret"))
        .status()
        .unwrap();
    assert!(push.success(), "ffmpeg publishes");

    // Graceful stop: SIGTERM (to the process we started) finishes and signs what is pending.
    assert!(
        Command::new("kill")
            .args(["-TERM", &node.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = node.wait().unwrap();
    assert!(status.success(), "node exits cleanly on SIGTERM: {status:?}");
    reader.join().unwrap();

    let o = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["verify", data.path().to_str().unwrap(), "--archive"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{report}");
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
