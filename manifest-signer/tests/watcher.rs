//! The directory watcher against packager output: synthetic playlists for the edge cases, and
//! real `ffmpeg -f hls` output.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use manifest_signer::signer::{SignerConfig, StreamSigner};
use manifest_signer::verify::{DirSource, VerifyOptions, verify_stream};
use manifest_signer::watcher::{Control, DirWatcher};
use manifest_signer::{ManifestChain, StreamKey};

fn key() -> StreamKey {
    StreamKey::from_seed([3; 32])
}

fn write_playlist(dir: &Path, first_seq: u64, names: &[&str], end: bool) {
    let mut s = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first_seq}\n");
    for n in names {
        s.push_str(&format!("#EXTINF:2.000,\n{n}\n"));
    }
    if end {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    std::fs::write(dir.join("live.m3u8"), s).unwrap();
}

#[test]
fn signs_only_listed_segments_and_survives_deletion_and_restarts() {
    let data = tempfile::tempdir().unwrap();
    let hls = tempfile::tempdir().unwrap();
    let signer = StreamSigner::open(key(), data.path(), SignerConfig::default()).unwrap();
    let mut w = DirWatcher::new(hls.path().to_path_buf(), signer).unwrap();
    let mut chain = ManifestChain::new(key().stream_id());

    std::fs::write(hls.path().join("a0.ts"), b"segment zero").unwrap();
    std::fs::write(hls.path().join("a1.ts"), b"segment one").unwrap();
    std::fs::write(hls.path().join("a2.ts"), b"half writ").unwrap(); // being written, not listed
    write_playlist(hls.path(), 0, &["a0.ts", "a1.ts"], false);
    let m = w.scan().unwrap().expect("two complete segments");
    chain.accept_wire(m.wire()).unwrap();
    assert_eq!(m.body.renditions[0].segments.len(), 2);
    assert_eq!(
        m.body.renditions[0].name, "source",
        "a single playlist is the source rendition, not its file name"
    );
    assert!(w.scan().unwrap().is_none(), "nothing new, nothing signed");

    // A restarted signer does not sign again what its window already holds.
    drop(w);
    let signer = StreamSigner::open(key(), data.path(), SignerConfig::default()).unwrap();
    let mut w = DirWatcher::new(hls.path().to_path_buf(), signer).unwrap();
    assert!(w.scan().unwrap().is_none(), "restart re-signed segments it had signed");

    // The packager finishes a2, lists it, and deletes a0.
    std::fs::write(hls.path().join("a2.ts"), b"half written, now complete").unwrap();
    std::fs::remove_file(hls.path().join("a0.ts")).unwrap();
    write_playlist(hls.path(), 1, &["a1.ts", "a2.ts"], false);
    let m = w.scan().unwrap().unwrap();
    chain.accept_wire(m.wire()).unwrap();
    let segs = &m.body.renditions[0].segments;
    assert_eq!(segs.len(), 3);
    assert_eq!(
        segs[2].hash,
        manifest_signer::Hash::of(b"half written, now complete"),
        "the complete bytes were signed"
    );

    // The packager restarts: numbering and file names start again with new content.
    std::fs::write(hls.path().join("a0.ts"), b"new publish, segment zero").unwrap();
    write_playlist(hls.path(), 0, &["a0.ts"], false);
    let m = w.scan().unwrap().unwrap();
    chain.accept_wire(m.wire()).unwrap();
    let segs = &m.body.renditions[0].segments;
    assert_eq!(segs.len(), 4);
    assert_eq!(segs[3].seq, 3, "media sequence continues across packager restarts");
    assert!(segs[3].disc, "a packager restart is a discontinuity");

    write_playlist(hls.path(), 0, &["a0.ts"], true);
    let m = w.scan().unwrap().unwrap();
    chain.accept_wire(m.wire()).unwrap();
    assert!(m.body.renditions[0].ended);
}

#[test]
fn refuses_to_watch_its_own_store_and_escaping_uris() {
    let data = tempfile::tempdir().unwrap();
    let signer = StreamSigner::open(key(), data.path(), SignerConfig::default()).unwrap();
    assert!(DirWatcher::new(data.path().to_path_buf(), signer).is_err());

    let hls = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.ts"), b"not yours").unwrap();
    let rel = format!("../{}/secret.ts", outside.path().file_name().unwrap().to_string_lossy());
    write_playlist(
        hls.path(),
        0,
        &[&rel, "/etc/hostname", "http://example.invalid/x.ts"],
        false,
    );
    let signer = StreamSigner::open(key(), data.path(), SignerConfig::default()).unwrap();
    let mut w = DirWatcher::new(hls.path().to_path_buf(), signer).unwrap();
    assert!(
        w.scan().unwrap().is_none(),
        "nothing outside the watched directory is signed"
    );
}

fn ffmpeg_hls(out: &Path, segment_type: &str, seconds: u32) -> std::process::Child {
    Command::new("ffmpeg")
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
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &seconds.to_string(),
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-c:a", "aac",
        ])
        .args([
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "3",
            "-hls_flags",
            "delete_segments",
        ])
        .args(["-hls_segment_type", segment_type])
        .arg(out.join("out.m3u8"))
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg must be installed (the README's test command installs it)")
}

async fn sign_live_ffmpeg(segment_type: &str) {
    let data = tempfile::tempdir().unwrap();
    let hls = tempfile::tempdir().unwrap();
    let signer = StreamSigner::open(
        key(),
        data.path(),
        SignerConfig {
            window: 30,
            ..SignerConfig::default()
        },
    )
    .unwrap();
    let store_dir = signer.store().dir().to_path_buf();
    let mut watcher = DirWatcher::new(hls.path().to_path_buf(), signer).unwrap();
    let (tx, rx) = mpsc::sync_channel(1);
    let stop = tx.clone();
    let (mtx, mrx) = mpsc::channel();
    let run = std::thread::spawn(move || {
        watcher.run(tx, rx, Duration::from_millis(500), |_, m| {
            let _ = mtx.send(m.wire().to_vec());
        })
    });
    let mut ffmpeg = ffmpeg_hls(hls.path(), segment_type, 5);
    let status = tokio::task::spawn_blocking(move || ffmpeg.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "ffmpeg failed");
    stop.send(Control::Stop).unwrap();
    run.join().unwrap().unwrap();

    let mut chain = ManifestChain::new(key().stream_id());
    let wires: Vec<Vec<u8>> = mrx.try_iter().collect();
    assert!(wires.len() >= 2, "signed as segments appeared, not once at the end");
    for w in &wires {
        chain.accept_wire(w).expect("every manifest extends the chain");
    }
    let m = chain.latest().unwrap();
    let r = &m.body.renditions[0];
    assert!(r.segments.len() >= 4, "{} segments", r.segments.len());
    assert!(r.segments.iter().all(|s| !s.disc), "one continuous publish");
    assert!(r.ended, "ffmpeg wrote ENDLIST");
    let report = verify_stream(
        &DirSource(store_dir.clone()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");

    // Every signed segment decodes (init prepended for fMP4).
    for s in &r.segments {
        let mut bytes = Vec::new();
        if let Some(init) = s.init {
            bytes.extend(std::fs::read(store_dir.join(format!("seg/{init}.mp4"))).unwrap());
        }
        bytes.extend(std::fs::read(store_dir.join(format!("seg/{}.{}", s.hash, r.container.media_ext()))).unwrap());
        let probe = data.path().join("probe.bin");
        std::fs::write(&probe, bytes).unwrap();
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&probe)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "segment {} does not decode: {}",
            s.seq,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signs_live_ffmpeg_fmp4_output() {
    sign_live_ffmpeg("fmp4").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signs_live_ffmpeg_mpegts_output() {
    sign_live_ffmpeg("mpegts").await;
}

/// nginx-rtmp's `hls_path` output never gets an ENDLIST: the watcher ends the stream itself
/// once no segment came for the idle time, and a segment after that reopens it.
#[test]
fn an_idle_packager_without_endlist_gets_its_stream_ended_then_reopened() {
    let data = tempfile::tempdir().unwrap();
    let hls = tempfile::tempdir().unwrap();
    let signer = StreamSigner::open(key(), data.path(), SignerConfig::default()).unwrap();
    let idle = Duration::from_millis(800);
    let mut watcher = DirWatcher::new(hls.path().to_path_buf(), signer)
        .unwrap()
        .with_idle_end(idle);
    let (tx, rx) = mpsc::sync_channel(1);
    let stop = tx.clone();
    let (mtx, mrx) = mpsc::channel();
    let run = std::thread::spawn(move || {
        watcher.run(tx, rx, Duration::from_millis(100), |_, m| {
            let _ = mtx.send((m.wire().to_vec(), std::time::Instant::now()));
        })
    });
    let mut chain = ManifestChain::new(key().stream_id());
    let mut next = || {
        let (wire, at) = mrx.recv_timeout(Duration::from_secs(10)).expect("a manifest is signed");
        (chain.accept_wire(&wire).expect("every manifest extends the chain"), at)
    };

    std::fs::write(hls.path().join("a0.ts"), b"nginx segment zero").unwrap();
    std::fs::write(hls.path().join("a1.ts"), b"nginx segment one").unwrap();
    write_playlist(hls.path(), 0, &["a0.ts", "a1.ts"], false);
    let (live, live_at) = loop {
        let (m, at) = next();
        assert!(!m.body.renditions[0].ended, "ended before the idle time");
        if m.body.log.size == 2 {
            break (m, at);
        }
    };
    let (ended, ended_at) = next();
    assert!(ended.body.renditions[0].ended, "the idle stream is ended");
    assert_eq!(ended.body.log.size, live.body.log.size, "nothing new, only the end");
    assert!(
        ended_at - live_at >= idle - Duration::from_millis(50),
        "{:?}",
        ended_at - live_at
    );
    let text = manifest_signer::playlist::render_media(&ended.body.renditions[0]);
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");

    // The packager goes on: the stream reopens after a discontinuity, in a fresh window.
    std::fs::write(hls.path().join("a2.ts"), b"nginx segment two").unwrap();
    write_playlist(hls.path(), 0, &["a0.ts", "a1.ts", "a2.ts"], false);
    let (back, _) = next();
    let r = &back.body.renditions[0];
    assert!(!r.ended);
    assert_eq!(
        r.segments.iter().map(|s| (s.seq, s.disc)).collect::<Vec<_>>(),
        vec![(2, true)]
    );
    // And ends again when it goes quiet.
    let (again, _) = next();
    assert!(again.body.renditions[0].ended);

    stop.send(Control::Stop).unwrap();
    run.join().unwrap().unwrap();
}
