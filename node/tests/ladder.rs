//! `hlswarm run --ladder` end to end: real ffmpeg pushes a 640x360 stream, the node signs the
//! source and every rung below it, and each rendition's signed playlist decodes. A ladder
//! with no ffmpeg to run is a start-up error.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};

use common::{Node, SECRET, verify_archive};

#[test]
fn ladder_renditions_are_signed_and_decode() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--ladder", "720p,240p"]);
    let id = node.stream_id.clone();
    let push = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "5"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(node.rtmp_url(SECRET))
        .status()
        .unwrap();
    assert!(push.success(), "ffmpeg publishes");

    // SIGTERM: the node drains the ladder and signs what is pending.
    let status = node.stop();
    assert!(status.success(), "node exits cleanly on SIGTERM: {status:?}");

    verify_archive(data.path());

    let dir = data.path().join("streams").join(&id);
    let master = std::fs::read_to_string(dir.join("master.m3u8")).unwrap();
    assert!(master.contains("\nsource.m3u8\n"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(
        master.contains("RESOLUTION=426x240") && master.contains("\n240p.m3u8\n"),
        "{master}"
    );
    assert!(!master.contains("720p"), "720p is not below the source: {master}");
    // CMAF: the audio is one rendition of an audio group that every video variant plays with.
    assert!(
        master.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"1\",URI=\"audio.m3u8\"\n"
        ),
        "{master}"
    );
    let variants: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")).collect();
    assert_eq!(variants.len(), 2, "{master}");
    for v in &variants {
        assert!(v.contains(",mp4a.40.2\"") && v.ends_with(",AUDIO=\"audio\""), "{v}");
    }
    // ffmpeg plays the demuxed HLS from the master: video from the variant, audio from the group.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(dir.join("master.m3u8"))
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && streams.contains("h264") && streams.contains("aac"),
        "{streams} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(dir.join("master.m3u8"))
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "master: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    for rendition in ["source", "240p", "audio"] {
        let playlist = dir.join(format!("{rendition}.m3u8"));
        let text = std::fs::read_to_string(&playlist).unwrap();
        let segments = text.lines().filter(|l| l.starts_with("#EXTINF")).count();
        assert!(segments >= 4, "5 s at 1 s segments: {text}");
        let decode = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(&playlist)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            decode.status.success() && decode.stderr.is_empty(),
            "{rendition}: {}",
            String::from_utf8_lossy(&decode.stderr)
        );
    }
}

#[test]
fn ladder_without_ffmpeg_is_a_start_up_error() {
    let data = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["run", "--rtmp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-swarm"])
        .env("HLSWARM_LADDER", "480p,240p")
        .env("PATH", empty_path.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stdout}");
    assert!(stderr.contains("--ladder") && stderr.contains("ffmpeg"), "{stderr}");
    assert!(!stdout.contains("running"), "refused before it starts: {stdout}");
}
