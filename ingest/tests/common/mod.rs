//! Shared helpers for the integration tests: a server on 127.0.0.1:0, ffmpeg as the
//! publisher, event waits with deadlines, and ffprobe/ffmpeg decode checks.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use ingest::{IngestConfig, IngestEvent, Segment, StreamKey};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

pub const KEY: &str = "s3cret-key";
pub const STREAM: &str = "cam";

pub struct Harness {
    pub port: u16,
    pub rx: mpsc::Receiver<IngestEvent>,
    /// Segments of the audio rendition that [`Harness::segment`] stepped over, in order.
    pub audio: Vec<Segment>,
    /// Parts that [`Harness::event`] and [`Harness::segment`] stepped over, in order.
    pub parts: Vec<ingest::Part>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<ingest::Result<()>>>,
}

pub fn config() -> IngestConfig {
    IngestConfig {
        keys: vec![StreamKey {
            key: KEY.into(),
            stream: STREAM.into(),
        }],
        ..IngestConfig::default()
    }
}

pub async fn start(cfg: IngestConfig) -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "ingest=info".into()))
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve(listener, cfg, tx, async move {
        let _ = stopped.await;
    }));
    Harness {
        port,
        rx,
        audio: Vec::new(),
        parts: Vec::new(),
        stop: Some(stop),
        server: Some(server),
    }
}

impl Harness {
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// Next event other than a part (those go to [`Harness::parts`]), or panic after `secs`.
    pub async fn event(&mut self, secs: u64) -> IngestEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("timed out waiting for an ingest event")
                .expect("event channel closed");
            match ev {
                IngestEvent::Part(p) => self.parts.push(p),
                ev => return ev,
            }
        }
    }

    /// Next video (or muxed, or audio-only) segment, skipping other events; segments of the
    /// audio rendition go to [`Harness::audio`].
    pub async fn segment(&mut self, secs: u64) -> Segment {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("timed out waiting for a segment")
                .expect("event channel closed");
            match ev {
                IngestEvent::Part(p) => self.parts.push(p),
                IngestEvent::Segment(s) if s.audio_group => self.audio.push(s),
                IngestEvent::Segment(s) => return s,
                _ => {}
            }
        }
    }

    /// Stops the server and waits for it; returns the events it emitted while stopping.
    pub async fn stop(mut self) -> Vec<IngestEvent> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().unwrap();
        timeout(Duration::from_secs(15), server)
            .await
            .expect("server did not stop")
            .expect("server task panicked")
            .expect("serve failed");
        let mut rest = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            rest.push(ev);
        }
        rest
    }
}

/// Starts ffmpeg publishing `seconds` of test video+audio to `url`.
pub fn ffmpeg(url: &str, seconds: u32, fps: u32, gop: u32, sample_rate: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate={fps}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={sample_rate}"))
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            &gop.to_string(),
            "-bf",
            "2",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg must be installed (apt-get install -y ffmpeg)")
}

/// Waits for a child with a deadline; returns (success, stderr).
pub async fn finish(child: Child, secs: u64) -> (bool, String) {
    let out = timeout(Duration::from_secs(secs), child.wait_with_output())
        .await
        .expect("ffmpeg did not exit in time")
        .expect("waiting for ffmpeg");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Writes init + segment to a temp file and checks that ffprobe sees the expected streams
/// and that ffmpeg decodes every frame without printing an error. `publish` lists the codecs
/// the publisher sent (`["h264", "aac"]`): an MPEG-TS segment holds them all, a CMAF segment
/// the one of its rendition (the audio rendition's the audio, the others the video).
pub async fn assert_decodes(seg: &Segment, publish: &[&str]) {
    let expect_streams: Vec<&str> = match (seg.container, seg.audio_group) {
        (ingest::Container::Ts, _) => publish.to_vec(),
        (ingest::Container::Fmp4, true) => publish.iter().copied().filter(|c| *c == "aac").collect(),
        (ingest::Container::Fmp4, false) if publish.len() > 1 => {
            publish.iter().copied().filter(|c| *c != "aac").collect()
        }
        (ingest::Container::Fmp4, false) => publish.to_vec(),
    };
    let dir = tempfile::tempdir().unwrap();
    let ext = match seg.container {
        ingest::Container::Fmp4 => "mp4",
        ingest::Container::Ts => "ts",
    };
    let path = dir.path().join(format!("seg.{ext}"));
    let mut bytes = seg.init.as_ref().map(|b| b.to_vec()).unwrap_or_default();
    bytes.extend_from_slice(&seg.data);
    std::fs::write(&path, bytes).unwrap();

    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&path)
        .kill_on_drop(true)
        .output();
    let probe = timeout(Duration::from_secs(20), probe).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(probe.status.success() && stderr.trim().is_empty(), "ffprobe: {stderr}");
    // For TS, ffprobe lists each stream twice (under the program and on its own).
    let mut streams: Vec<String> = Vec::new();
    for l in String::from_utf8_lossy(&probe.stdout).lines() {
        let l = l.trim().trim_end_matches(',').to_owned();
        if !l.is_empty() && !streams.contains(&l) {
            streams.push(l);
        }
    }
    assert_eq!(streams, expect_streams, "segment {}", seg.sequence);

    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let decode = timeout(Duration::from_secs(20), decode).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success() && stderr.trim().is_empty(), "decode: {stderr}");
}

/// A video and an audio CMAF segment of the same cut, each with its init segment, decode
/// together as one programme (ffmpeg with both as inputs), without an error.
pub async fn assert_decode_together(video: &Segment, audio: &Segment) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = ["-nostdin", "-v", "error"].iter().map(Into::into).collect();
    for (name, seg) in [("v.mp4", video), ("a.mp4", audio)] {
        let path = dir.path().join(name);
        let mut bytes = seg.init.as_ref().map(|b| b.to_vec()).unwrap_or_default();
        bytes.extend_from_slice(&seg.data);
        std::fs::write(&path, bytes).unwrap();
        args.push("-i".into());
        args.push(path.into());
    }
    for a in ["-map", "0:v", "-map", "1:a", "-f", "null", "-"] {
        args.push(a.into());
    }
    let decode = Command::new("ffmpeg").args(&args).kill_on_drop(true).output();
    let decode = timeout(Duration::from_secs(20), decode).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success() && stderr.trim().is_empty(), "decode: {stderr}");
}
