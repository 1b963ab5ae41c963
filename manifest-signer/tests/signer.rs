//! The signer's persistence: restart resumes the chain, torn logs are cut, retention prunes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use manifest_signer::signer::{NewSegment, RenditionInfo, SignerConfig, StreamSigner};
use manifest_signer::verify::{DirSource, VerifyOptions, verify_stream};
use manifest_signer::{Container, ManifestChain, RenditionKind, StreamKey};

fn seg(i: u32) -> NewSegment {
    NewSegment {
        rendition: "source".into(),
        container: Container::Fmp4,
        data: Arc::from(format!("segment {i} payload").into_bytes()),
        init: Some(Arc::from(&b"init"[..])),
        duration_us: 2_000_000,
        discontinuity: false,
        independent: true,
        pdt_ms: Some(1_000 * u64::from(i)),
        info: RenditionInfo::default(),
    }
}

fn key() -> StreamKey {
    StreamKey::from_seed([9; 32])
}

#[tokio::test]
async fn restart_continues_the_chain_with_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = ManifestChain::new(key().stream_id());
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    for i in 0..3 {
        let m = signer.publish(vec![seg(i)]).unwrap();
        chain.accept_wire(m.wire()).unwrap();
    }
    drop(signer);

    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    assert_eq!(signer.latest().unwrap().body.seq, 2);
    let m = signer.publish(vec![seg(3)]).unwrap();
    assert_eq!(m.body.seq, 3, "no sequence number reused");
    chain
        .accept_wire(m.wire())
        .expect("the resumed manifest extends the chain");
    let r = &m.body.renditions[0];
    assert_eq!(r.segments.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert!(
        r.segments[3].disc,
        "the first segment after a restart starts a discontinuity"
    );
    assert!(!r.segments[2].disc);
    assert_eq!(m.body.log.size, 4);

    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.segments_verified, 4);
}

#[test]
fn a_torn_log_line_is_cut_and_a_rewritten_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    signer.publish(vec![seg(0), seg(1)]).unwrap();
    let log_path = signer.store().path("log.jsonl");
    drop(signer);

    let mut bytes = std::fs::read(&log_path).unwrap();
    let good = bytes.clone();
    bytes.extend_from_slice(b"{\"disc\":fal");
    std::fs::write(&log_path, &bytes).unwrap();
    let signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    assert_eq!(signer.log().len(), 2);
    assert_eq!(std::fs::read(&log_path).unwrap(), good, "torn line cut off");
    drop(signer);

    let first_line_end = good.iter().position(|b| *b == b'\n').unwrap();
    std::fs::write(&log_path, &good[first_line_end + 1..]).unwrap();
    let err = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap_err();
    assert_eq!(err.code(), "store", "{err}");
}

#[tokio::test]
async fn retention_prunes_old_segments_but_the_log_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SignerConfig {
        window: 2,
        retain_segments: Some(3),
        target_duration: 2,
        parts: false,
    };
    let mut signer = StreamSigner::open(key(), dir.path(), cfg).unwrap();
    for i in 0..6 {
        signer.publish(vec![seg(i)]).unwrap();
    }
    let files = std::fs::read_dir(signer.store().path("seg")).unwrap().count();
    assert_eq!(files, 3 + 1, "three media segments and the init");
    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");
    assert_eq!(report.log_entries, Some(6));
    assert_eq!(report.archive_verified, 1);
    assert_eq!(report.archive_missing, 3);
}

#[tokio::test]
async fn retention_never_prunes_a_stalled_renditions_window() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SignerConfig {
        window: 2,
        retain_segments: Some(4),
        target_duration: 2,
        parts: false,
    };
    let mut signer = StreamSigner::open(key(), dir.path(), cfg).unwrap();
    let rung = |i: u32| NewSegment {
        rendition: "240p".into(),
        data: Arc::from(format!("rung {i}").into_bytes()),
        ..seg(i)
    };
    // Both renditions run, then the rung stalls while the source goes on for a long time.
    for i in 0..2 {
        signer.publish(vec![seg(i)]).unwrap();
        signer.publish(vec![rung(i)]).unwrap();
    }
    for i in 2..20 {
        signer.publish(vec![seg(i)]).unwrap();
    }
    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: false },
    )
    .await;
    assert!(report.ok(), "every window segment is still on disk: {report}");
    let files = std::fs::read_dir(signer.store().path("seg")).unwrap().count();
    assert!(files <= 4 + 2 + 1, "disk stays bounded: {files} files");
}

#[tokio::test]
async fn a_tampered_segment_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    let m = signer.publish(vec![seg(0), seg(1)]).unwrap();
    let h = m.body.renditions[0].segments[1].hash;
    let path = signer.store().path(&format!("seg/{h}.m4s"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: false },
    )
    .await;
    assert!(!report.ok());
    assert!(report.failures.iter().any(|f| f.contains("hash_mismatch")), "{report}");
}

/// What a full disk does, made deterministic: a path the store cannot write.
fn block(path: &std::path::Path) -> std::path::PathBuf {
    let aside = path.with_extension("aside");
    if path.exists() {
        std::fs::rename(path, &aside).unwrap();
    }
    std::fs::create_dir_all(path.join("blocker")).unwrap();
    aside
}

fn unblock(path: &std::path::Path, aside: &std::path::Path) {
    std::fs::remove_dir_all(path).unwrap();
    if aside.exists() {
        std::fs::rename(aside, path).unwrap();
    }
}

#[tokio::test]
async fn a_failed_write_leaves_no_unlogged_segment_no_skipped_number_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = ManifestChain::new(key().stream_id());
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    chain.accept_wire(signer.publish(vec![seg(0)]).unwrap().wire()).unwrap();

    // The log cannot be appended: the segment is refused and nothing of it remains.
    let log = signer.store().path("log.jsonl");
    let aside = block(&log);
    assert_eq!(signer.publish(vec![seg(1)]).unwrap_err().code(), "io");
    unblock(&log, &aside);
    let m = signer.publish(vec![seg(2)]).unwrap();
    chain.accept_wire(m.wire()).unwrap();
    let seqs: Vec<u64> = m.body.renditions[0].segments.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        vec![0, 1],
        "the refused segment is not listed and its number is not skipped"
    );
    assert_eq!(m.body.log.size, 2);

    // The playlists cannot be written: the segment is logged, and the next manifest signs it.
    let master = signer.store().path("master.m3u8");
    let aside = block(&master);
    assert_eq!(signer.publish(vec![seg(3)]).unwrap_err().code(), "io");
    unblock(&master, &aside);
    let m = signer.publish(vec![seg(4)]).unwrap();
    chain.accept_wire(m.wire()).unwrap();
    let seqs: Vec<u64> = m.body.renditions[0].segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(m.body.log.size, 4);

    let leftovers: Vec<_> = std::fs::read_dir(signer.store().dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "failed writes leave no temp files: {leftovers:?}");
    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");
}

#[tokio::test]
async fn a_stream_back_after_its_end_starts_a_fresh_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = ManifestChain::new(key().stream_id());
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    for i in 0..3 {
        chain.accept_wire(signer.publish(vec![seg(i)]).unwrap().wire()).unwrap();
    }
    let mut disc = seg(3);
    disc.discontinuity = true;
    chain.accept_wire(signer.publish(vec![disc]).unwrap().wire()).unwrap();
    let ended = signer.end().unwrap().expect("the end is signed");
    chain.accept_wire(ended.wire()).unwrap();
    let before = &ended.body.renditions[0];
    assert!(before.ended);
    assert!(signer.end().unwrap().is_none(), "an ended stream is not ended twice");

    let m = signer.publish(vec![seg(4)]).unwrap();
    chain.accept_wire(m.wire()).unwrap();
    let r = &m.body.renditions[0];
    assert!(!r.ended);
    // Nothing of the ended playlist is listed again: the media sequence moves past it and the
    // discontinuity sequence counts the discontinuity it held.
    assert_eq!(r.segments.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![4]);
    assert!(r.segments[0].disc, "the comeback starts a discontinuity");
    assert_eq!(r.disc_seq, before.disc_seq + 1);
    let text = manifest_signer::playlist::render_media(r);
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-DISCONTINUITY\n"),
        "{text}"
    );
    assert!(!text.contains("ENDLIST"));

    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");
}

#[tokio::test]
async fn a_demuxed_audio_rendition_is_signed_as_the_audio_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    let video = |i: u32| NewSegment {
        info: RenditionInfo {
            codecs: Some("avc1.64001f".into()),
            resolution: Some("1280x720".into()),
            ..RenditionInfo::default()
        },
        ..seg(i)
    };
    let audio = |i: u32| NewSegment {
        rendition: "audio".into(),
        data: Arc::from(format!("audio {i}").into_bytes()),
        init: Some(Arc::from(&b"audio init"[..])),
        info: RenditionInfo {
            codecs: Some("mp4a.40.2".into()),
            kind: Some(RenditionKind::Audio),
            channels: Some(2),
            ..RenditionInfo::default()
        },
        ..seg(i)
    };
    signer.publish(vec![video(0), audio(0)]).unwrap();
    // Later segments need not repeat the kind: like codecs, it stays.
    let plain = NewSegment {
        info: RenditionInfo::default(),
        ..audio(1)
    };
    let m = signer.publish(vec![video(1), plain]).unwrap();
    let a = m.body.rendition("audio").unwrap();
    assert_eq!((a.kind, a.channels), (Some(RenditionKind::Audio), Some(2)));
    let v = m.body.rendition("source").unwrap();
    assert_eq!((v.kind, v.channels), (None, None));

    let master = std::fs::read_to_string(signer.store().path("master.m3u8")).unwrap();
    assert_eq!(master, manifest_signer::playlist::render_master(&m.body));
    assert!(
        master.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"\n"
        ),
        "{master}"
    );
    let inf = master.lines().find(|l| l.starts_with("#EXT-X-STREAM-INF:")).unwrap();
    assert!(
        inf.contains(",CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"audio\""),
        "{master}"
    );
    assert_eq!(master.matches("#EXT-X-STREAM-INF:").count(), 1, "audio is no variant");
    let bw = |r: &manifest_signer::Rendition| r.bandwidth.unwrap();
    assert!(
        inf.starts_with(&format!("#EXT-X-STREAM-INF:BANDWIDTH={},", bw(v) + bw(a))),
        "{master}"
    );

    let report = verify_stream(
        &DirSource(signer.store().dir().to_path_buf()),
        &key().stream_id(),
        VerifyOptions { archive: true },
    )
    .await;
    assert!(report.ok(), "{report}");
}

#[test]
fn channels_without_the_audio_kind_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = StreamSigner::open(key(), dir.path(), SignerConfig::default()).unwrap();
    signer.publish(vec![seg(0)]).unwrap();
    for (kind, channels) in [
        (None, 2),
        (Some(RenditionKind::Audio), 0),
        (Some(RenditionKind::Audio), 65),
    ] {
        let mut bad = seg(1);
        bad.info.kind = kind;
        bad.info.channels = Some(channels);
        let err = signer.publish(vec![bad]).unwrap_err();
        assert_eq!(err.code(), "malformed", "{err}");
    }
    let m = signer.publish(vec![seg(1)]).unwrap();
    let r = &m.body.renditions[0];
    assert_eq!(r.segments.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!((r.kind, r.channels), (None, None));
    assert_eq!(m.body.log.size, 2);
}
