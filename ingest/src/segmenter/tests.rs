use super::*;
use crate::codec::tests::avcc;
use std::time::Duration;

fn video_config() -> Bytes {
    let mut v = vec![0x17, 0, 0, 0, 0];
    v.extend_from_slice(&avcc());
    Bytes::from(v)
}

fn video_frame(key: bool, cts: u8) -> Bytes {
    Bytes::from(vec![
        if key { 0x17 } else { 0x27 },
        1,
        0,
        0,
        cts,
        0,
        0,
        0,
        2,
        if key { 0x65 } else { 0x41 },
        0,
    ])
}

fn audio_config() -> Bytes {
    Bytes::from_static(&[0xaf, 0, 0x11, 0x90])
}

fn audio_frame() -> Bytes {
    Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04])
}

fn segmenter(target_ms: u64) -> Segmenter {
    Segmenter::new(
        "s".into(),
        1,
        Container::Fmp4,
        Duration::from_millis(target_ms),
        1 << 20,
        Timeline::default(),
    )
}

/// Feeds `seconds` of 30 fps video (GOP 60, B-frame style cts) and 48 kHz audio starting at
/// raw timestamp `start`, interleaved in timestamp order.
fn feed(s: &mut Segmenter, start: u32, seconds: u32, audio: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    out.extend(s.video(start, &video_config()).unwrap());
    if audio {
        out.extend(s.audio(start, &audio_config()).unwrap());
    }
    let frames = seconds * 30;
    let mut a = 0u32;
    for i in 0..frames {
        let t = start.wrapping_add(i * 1000 / 30);
        while audio && a * 1024 * 1000 / 48000 <= i * 1000 / 30 {
            let at = start.wrapping_add(a * 1024 * 1000 / 48000);
            out.extend(s.audio(at, &audio_frame()).unwrap());
            a += 1;
        }
        out.extend(s.video(t, &video_frame(i % 60 == 0, 66)).unwrap());
    }
    out.extend(s.flush().unwrap());
    out
}

/// The video and the audio renditions of a stream's fMP4 segments.
fn split(segs: Vec<Segment>) -> (Vec<Segment>, Vec<Segment>) {
    segs.into_iter().partition(|s| !s.audio_group)
}

/// The boxes at the top level of an ISO BMFF buffer, and how many `traf`/`trak` it holds.
fn boxes(data: &[u8]) -> (Vec<String>, usize) {
    let (mut top, mut tracks, mut i) = (Vec::new(), 0, 0);
    while i + 8 <= data.len() {
        let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        top.push(String::from_utf8_lossy(&data[i + 4..i + 8]).into_owned());
        i += size.max(8);
    }
    for w in data.windows(4) {
        if w == b"traf" || w == b"trak" {
            tracks += 1;
        }
    }
    (top, tracks)
}

#[test]
fn cuts_at_keyframes_near_target() {
    let mut s = segmenter(2000);
    let (segs, audio) = split(feed(&mut s, 0, 7, true));
    assert_eq!(
        segs.len(),
        4,
        "{:?}",
        segs.iter().map(|s| s.duration_us).collect::<Vec<_>>()
    );
    for seg in &segs[..3] {
        assert!(
            (1_990_000..=2_010_000).contains(&seg.duration_us),
            "{}",
            seg.duration_us
        );
        assert_eq!(seg.info.codecs, "avc1.64001e");
        assert_eq!((seg.info.width, seg.info.height), (640, 360));
        assert!((29_900..=30_100).contains(&seg.info.frame_rate_milli));
    }
    assert!(segs[0].discontinuity);
    assert!(segs[1..].iter().all(|s| !s.discontinuity));
    assert_eq!(segs.iter().map(|s| s.sequence).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The init segment is shared, not rebuilt.
    let init = segs[0].init.clone().unwrap();
    assert!(segs.iter().all(|s| s.init.as_ref().unwrap().as_ptr() == init.as_ptr()));
    // Start times follow each other.
    for w in segs.windows(2) {
        let end = w[0].start_pts_us + w[0].duration_us;
        assert!(w[1].start_pts_us.abs_diff(end) < 25_000);
    }
    assert!(s.timeline().next_start_ms >= 6_900);
    assert!(segs.iter().all(|s| s.rendition == "source"));

    // CMAF: the audio is a rendition of its own, cut at the same instants, numbered alike.
    assert_eq!(audio.len(), segs.len());
    let audio_init = audio[0].init.clone().unwrap();
    assert_ne!(audio_init, init);
    for (v, a) in segs.iter().zip(&audio) {
        assert_eq!(
            (a.rendition.as_str(), a.sequence, a.discontinuity),
            ("audio", v.sequence, v.discontinuity)
        );
        assert_eq!(a.info.codecs, "mp4a.40.2");
        assert_eq!((a.info.audio_channels, a.info.video), (2, None));
        assert!(a.independent);
        assert!(a.init.as_ref().unwrap().as_ptr() == audio_init.as_ptr());
        // Within one AAC frame (21.3 ms) of the video's span.
        let v_start = v.start_pts_us - 66_000; // the video's first decode time (66 ms cts)
        assert!(
            a.start_pts_us.abs_diff(v_start) <= 21_334,
            "{} vs {v_start}",
            a.start_pts_us
        );
        assert!(
            a.duration_us.abs_diff(v.duration_us) <= 21_334 * 2,
            "{} vs {}",
            a.duration_us,
            v.duration_us
        );
    }
    // One track per init and per media segment: styp, one moof with one traf, one mdat.
    for (init, codec) in [(&init, "avc1"), (&audio_init, "mp4a")] {
        assert_eq!(boxes(init), (vec!["ftyp".to_owned(), "moov".to_owned()], 1));
        assert!(init.windows(4).any(|w| w == codec.as_bytes()));
    }
    for seg in segs.iter().chain(&audio) {
        let (top, tracks) = boxes(&seg.data);
        assert_eq!((top, tracks), (vec!["styp".into(), "moof".into(), "mdat".into()], 1));
    }
}

#[test]
fn a_new_session_starts_after_everything_the_last_one_presented() {
    // Every frame is shown 66 ms after it is decoded (B-frames), so the last ones are shown
    // after the decode timeline ends: the last frame is decoded at 2966 ms and shown from
    // 3032 ms for 33 ms.
    let mut s = segmenter(1000);
    feed(&mut s, 0, 3, true);
    assert!(s.timeline().next_start_ms >= 3_065, "{:?}", s.timeline());
    let mut next = Segmenter::new(
        "s".into(),
        2,
        Container::Fmp4,
        Duration::from_millis(1000),
        1 << 20,
        s.timeline(),
    );
    let segs = feed(&mut next, 0, 2, true);
    assert!(segs[0].start_pts_us >= 3_065_000, "{}", segs[0].start_pts_us);
}

#[test]
fn one_second_target() {
    let mut s = segmenter(1000);
    let (segs, _) = split(feed(&mut s, 0, 5, true));
    // Keyframes every 2 s: each one starts a segment, and a segment is cut without one before
    // it reaches 1.5 s (EXT-X-TARGETDURATION stays 1).
    let flags: Vec<(u64, bool)> = segs.iter().map(|s| (s.duration_us / 1000, s.independent)).collect();
    assert_eq!(flags.iter().filter(|f| f.1).count(), 3, "{flags:?}");
    assert!(segs.iter().all(|s| s.duration_us < 1_500_000), "{flags:?}");
    let mut s = segmenter(1000);
    let mut out = Vec::new();
    out.extend(s.video(0, &video_config()).unwrap());
    for i in 0..150u32 {
        out.extend(s.video(i * 1000 / 30, &video_frame(i % 30 == 0, 0)).unwrap());
    }
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|s| (980_000..=1_020_000).contains(&s.duration_us)));
}

#[test]
fn timestamp_wrap_is_continuous() {
    let mut s = segmenter(2000);
    let (segs, audio) = split(feed(&mut s, u32::MAX - 3000, 7, true));
    assert_eq!((segs.len(), audio.len()), (4, 4));
    for seg in &segs[..3] {
        assert!((1_990_000..=2_010_000).contains(&seg.duration_us));
    }
}

#[test]
fn jumps_are_rebased() {
    let mut s = segmenter(1000);
    let mut out = Vec::new();
    out.extend(s.video(0, &video_config()).unwrap());
    for i in 0..60u32 {
        out.extend(s.video(i * 1000 / 30, &video_frame(i % 30 == 0, 0)).unwrap());
    }
    // Forward jump of an hour, then backwards by 10 minutes.
    for i in 0..60u32 {
        out.extend(
            s.video(3_600_000 + i * 1000 / 30, &video_frame(i % 30 == 0, 0))
                .unwrap(),
        );
    }
    for i in 0..60u32 {
        out.extend(
            s.video(3_000_000 + i * 1000 / 30, &video_frame(i % 30 == 0, 0))
                .unwrap(),
        );
    }
    out.extend(s.flush().unwrap());
    // 6 s of frames in 1 s GOPs; a rebase lands a keyframe just short of the target, so
    // some segments hold two GOPs, but none spans a jump.
    assert!(out.len() >= 4, "{}", out.len());
    let total: u64 = out.iter().map(|s| s.duration_us).sum();
    assert!((5_900_000..=6_100_000).contains(&total), "{total}");
    for seg in &out {
        assert!(seg.duration_us < 2_100_000, "{}", seg.duration_us);
    }
    let ends: Vec<u64> = out.iter().map(|s| s.start_pts_us).collect();
    assert!(ends.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn audio_only_cuts_by_duration() {
    let mut s = segmenter(2000);
    let mut out = Vec::new();
    out.extend(s.audio(0, &audio_config()).unwrap());
    for i in 0..500u32 {
        out.extend(s.audio(i * 1024 * 1000 / 48000, &audio_frame()).unwrap());
    }
    out.extend(s.flush().unwrap());
    assert!(out.len() >= 4);
    assert_eq!(out[0].info.codecs, "mp4a.40.2");
    for seg in &out[..out.len() - 1] {
        assert!(
            (2_000_000..=2_030_000).contains(&seg.duration_us),
            "{}",
            seg.duration_us
        );
    }
}

#[test]
fn config_change_marks_discontinuity() {
    let mut s = segmenter(1000);
    let mut out = feed(&mut s, 0, 2, false);
    let n = out.len();
    // Same config again: nothing changes. A changed record: new init + discontinuity.
    out.extend(s.video(2000, &video_config()).unwrap());
    let mut changed = video_config().to_vec();
    changed[6] = 0x4d; // profile byte in the record header
    out.extend(s.video(2000, &Bytes::from(changed)).unwrap());
    for i in 0..40u32 {
        out.extend(s.video(2000 + i * 33, &video_frame(i % 30 == 0, 0)).unwrap());
    }
    out.extend(s.flush().unwrap());
    assert!(out.len() > n);
    assert!(out[n].discontinuity);
    assert_ne!(out[n].init, out[0].init);
}

#[test]
fn ts_container() {
    let mut s = Segmenter::new(
        "s".into(),
        1,
        Container::Ts,
        Duration::from_secs(2),
        1 << 20,
        Timeline::default(),
    );
    let segs = feed(&mut s, 0, 5, true);
    assert_eq!(segs.len(), 3);
    for seg in &segs {
        assert!(seg.init.is_none());
        assert_eq!(seg.data.len() % 188, 0);
    }
}

#[test]
fn garbage_tags_never_panic() {
    let mut s = segmenter(1000);
    let _ = s.video(0, &video_config());
    let _ = s.audio(0, &audio_config());
    let mut x: u32 = 12345;
    for i in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 40) as usize;
        let body: Vec<u8> = (0..len).map(|j| (x >> (j % 24)) as u8).collect();
        let body = Bytes::from(body);
        if i % 2 == 0 {
            let _ = s.video(x, &body);
        } else {
            let _ = s.audio(x, &body);
        }
    }
    let _ = s.flush();
}

#[test]
fn rung_with_a_decode_delay_cuts_at_the_same_keyframes() {
    // ffmpeg's rung of a source: same presentation times, decode times two frames earlier,
    // the first ones before the floor. Keyframes every second, 1 s target.
    let mut s = segmenter(1000).for_rung("240p", Clock::fixed(0, -10_000));
    let mut out = s.video(10_000, &video_config()).unwrap();
    for i in 0..90u32 {
        let pts = 10_000 + i * 1000 / 30;
        out.extend(s.video(pts - 67, &video_frame(i % 30 == 0, 67)).unwrap());
    }
    out.extend(s.flush().unwrap());
    let durations: Vec<u64> = out.iter().map(|s| s.duration_us).collect();
    assert_eq!(out.len(), 3, "{durations:?}");
    for (i, seg) in out.iter().enumerate() {
        assert_eq!(seg.rendition, "240p");
        // Presentation times stay exact although the first decode times were raised.
        assert!(
            seg.start_pts_us.abs_diff(i as u64 * 1_000_000) <= 1_000,
            "{i}: {}",
            seg.start_pts_us
        );
    }
}

/// OBS 29 with a 2 s keyframe interval: its first two keyframes come 1999 ms apart. The
/// keyframe within one frame of the target closes the segment (it used to wait for the third:
/// a 4 s first segment).
#[test]
fn obs_keyframes_1999_ms_apart_close_the_first_segment() {
    let mut s = segmenter(2000);
    let mut segs = Vec::new();
    segs.extend(s.video(0, &video_config()).unwrap());
    // Keyframes at 0, 1999, 3999, 5999 ms; 30 fps in between.
    let mut t = 0u32;
    let mut keys = vec![0u32, 1999, 3999, 5999, 7999];
    while t < 8000 {
        let key = keys.first() == Some(&t);
        if key {
            keys.remove(0);
        }
        segs.extend(s.video(t, &video_frame(key, 0)).unwrap());
        let next = t + 33;
        t = match keys.first() {
            Some(&k) if k < next + 33 && k > t => k,
            _ => next,
        };
    }
    segs.extend(s.flush().unwrap());
    let durations: Vec<u64> = segs.iter().map(|s| s.duration_us / 1000).collect();
    assert!(durations.len() >= 4, "{durations:?}");
    for d in &durations[..3] {
        assert!((1900..=2100).contains(d), "every full segment is ~2 s: {durations:?}");
    }
    assert!(segs.iter().all(|s| s.advice.is_empty()), "a 2 s GOP needs no advice");
}

/// OBS's default keyframe interval ("auto", 250 frames at 30 fps: 8.3 s) with 2 s segments:
/// said once, with the setting to change.
#[test]
fn a_keyframe_interval_far_above_the_target_is_advised_once() {
    let mut s = segmenter(2000);
    let mut segs = Vec::new();
    segs.extend(s.video(0, &video_config()).unwrap());
    for i in 0..(30 * 20) {
        segs.extend(s.video(i * 1000 / 30, &video_frame(i % 250 == 0, 0)).unwrap());
    }
    segs.extend(s.flush().unwrap());
    let last = segs.last().unwrap();
    assert_eq!(last.advice.len(), 1, "{:?}", last.advice);
    assert!(
        last.advice[0].contains("keyframes are 8.3 s apart"),
        "{:?}",
        last.advice
    );
    assert!(last.advice[0].contains("Keyframe Interval to 2 s"), "{:?}", last.advice);
}

/// An audio-only publish used to lose its first ~1 s while the segmenter waited to see whether
/// video would come; the held frames now open the stream.
#[test]
fn an_audio_only_stream_keeps_its_first_second() {
    let mut s = segmenter(2000);
    let mut segs = Vec::new();
    segs.extend(s.audio(0, &audio_config()).unwrap());
    let frames = 48_000 * 6 / 1024; // 6 s of AAC frames
    for a in 0..frames {
        segs.extend(s.audio(a * 1024 * 1000 / 48_000, &audio_frame()).unwrap());
    }
    segs.extend(s.flush().unwrap());
    assert_eq!(segs[0].start_pts_us, 0, "the first frame is in the first segment");
    let total: u64 = segs.iter().map(|s| s.duration_us).sum();
    let fed = u64::from(frames) * 1024 * 1_000_000 / 48_000;
    assert!(total + 30_000 >= fed, "{total} us of {fed} us kept");
}

/// MP3 audio (SoundFormat 2) is dropped, and a High 10 source would not play in browsers:
/// both are said, with what to change.
#[test]
fn mp3_audio_and_high_10_video_are_advised() {
    let mut s = segmenter(2000);
    let mut config = video_config().to_vec();
    config[6] = 110; // avcC AVCProfileIndication: High 10
    let mut segs = Vec::new();
    segs.extend(s.video(0, &Bytes::from(config)).unwrap());
    segs.extend(s.audio(0, &Bytes::from_static(&[0x2f, 0xff, 0xfb])).unwrap());
    for i in 0..90 {
        segs.extend(s.video(i * 1000 / 30, &video_frame(i % 60 == 0, 0)).unwrap());
        segs.extend(
            s.audio(i * 1000 / 30, &Bytes::from_static(&[0x2f, 0xff, 0xfb]))
                .unwrap(),
        );
    }
    segs.extend(s.flush().unwrap());
    let advice = &segs.last().unwrap().advice;
    assert_eq!(advice.len(), 2, "each said once: {advice:?}");
    assert!(
        advice.iter().any(|a| a.starts_with("H.264 High 10 passes through")),
        "{advice:?}"
    );
    assert!(
        advice.iter().any(|a| a.starts_with("MP3 audio is not supported")),
        "{advice:?}"
    );
}

/// A 12 s keyframe interval with 2 s segments: the segmenter must cut without a keyframe
/// before the EXTINF would round above EXT-X-TARGETDURATION (2.5 s), and such a segment is
/// marked as not independent so that the master playlist never claims
/// EXT-X-INDEPENDENT-SEGMENTS for it. Segments cut at keyframes are.
#[test]
fn a_cut_without_a_keyframe_is_not_independent() {
    let mut s = segmenter(2000);
    let mut segs = Vec::new();
    segs.extend(s.video(0, &video_config()).unwrap());
    for i in 0..(30 * 30) {
        segs.extend(s.video(i * 1000 / 30, &video_frame(i % 360 == 0, 0)).unwrap());
    }
    segs.extend(s.flush().unwrap());
    let flags: Vec<(u64, bool)> = segs.iter().map(|s| (s.duration_us / 1000, s.independent)).collect();
    assert!(segs.len() >= 3, "{flags:?}");
    for seg in &segs {
        assert!(seg.duration_us < 2_500_000, "EXTINF rounds to at most 2: {flags:?}");
    }
    assert!(segs[0].independent, "the first begins with a keyframe: {flags:?}");
    assert!(!segs[1].independent, "cut at 2.5 s in a 12 s GOP: {flags:?}");
    // The keyframe at 12 s starts a segment of its own.
    let mut at_us = 0;
    let starts: Vec<(u64, bool)> = segs
        .iter()
        .map(|s| {
            let start = at_us;
            at_us += s.duration_us;
            (start / 1000, s.independent)
        })
        .collect();
    for (start_ms, independent) in &starts {
        let on_keyframe = start_ms % 12_000 < 34 || 12_000 - start_ms % 12_000 < 34;
        assert_eq!(*independent, on_keyframe, "{starts:?}");
    }
    // Keyframes every 2 s: every segment is independent.
    let mut s = segmenter(2000);
    let segs = feed(&mut s, 0, 10, true);
    assert!(segs.iter().all(|s| s.independent));
}

/// EXT-X-TARGETDURATION is the configured target for the whole stream (RFC 8216bis: it must
/// not change), so no segment's EXTINF may round above it, whatever the keyframe interval, and
/// every keyframe further apart than the target starts a segment: a 1.5 s GOP gives 1.5 s
/// segments, a 3 s GOP a cut segment and a short one, never a 3 s one.
#[test]
fn no_segment_rounds_above_the_target_whatever_the_gop() {
    for gop_frames in [45u32, 60, 61, 75, 90, 120, 250] {
        let mut s = segmenter(2000);
        let mut segs = Vec::new();
        segs.extend(s.video(0, &video_config()).unwrap());
        let frames = 30 * 20;
        for i in 0..frames {
            segs.extend(s.video(i * 1000 / 30, &video_frame(i % gop_frames == 0, 0)).unwrap());
        }
        segs.extend(s.flush().unwrap());
        let durations: Vec<(u64, bool)> = segs.iter().map(|s| (s.duration_us / 1000, s.independent)).collect();
        for seg in &segs {
            assert!(
                (seg.duration_us + 500_000) / 1_000_000 <= 2,
                "GOP of {gop_frames} frames: {durations:?}"
            );
        }
        let independent = segs.iter().filter(|s| s.independent).count();
        assert_eq!(
            independent,
            frames.div_ceil(gop_frames) as usize,
            "GOP of {gop_frames} frames: {durations:?}"
        );
    }
}

/// LL-HLS parts: every segment is the concatenation of its parts, video and audio alike; a
/// part is one moof with one traf (the first opens with the segment's styp); parts last about
/// the target, the first of a segment starts on a keyframe, and every part comes before its
/// segment.
#[test]
fn segments_are_the_concatenation_of_their_parts() {
    let mut s = segmenter(2000).with_part_target(Some(Duration::from_millis(200)));
    let mut events: Vec<Result<Segment, Part>> = Vec::new();
    let mut feed_tag = |s: &mut Segmenter, video: bool, t: u32, body: &Bytes| {
        let segs = if video { s.video(t, body) } else { s.audio(t, body) }.unwrap();
        events.extend(s.take_parts().into_iter().map(Err));
        events.extend(segs.into_iter().map(Ok));
    };
    feed_tag(&mut s, true, 0, &video_config());
    feed_tag(&mut s, false, 0, &audio_config());
    let mut a = 0u32;
    for i in 0..(30 * 7) {
        while a * 1024 * 1000 / 48000 <= i * 1000 / 30 {
            feed_tag(&mut s, false, a * 1024 * 1000 / 48000, &audio_frame());
            a += 1;
        }
        feed_tag(&mut s, true, i * 1000 / 30, &video_frame(i % 60 == 0, 66));
    }
    let segs = s.flush().unwrap();
    events.extend(s.take_parts().into_iter().map(Err));
    events.extend(segs.into_iter().map(Ok));

    let mut pending: Vec<Part> = Vec::new();
    let mut checked = 0;
    for ev in events {
        match ev {
            Err(part) => pending.push(part),
            Ok(seg) => {
                let (mine, rest): (Vec<Part>, Vec<Part>) =
                    pending.into_iter().partition(|p| p.rendition == seg.rendition);
                pending = rest;
                assert!(!mine.is_empty(), "segment {} {} has parts", seg.rendition, seg.sequence);
                let joined: Vec<u8> = mine.iter().flat_map(|p| p.data.to_vec()).collect();
                assert_eq!(joined, seg.data.to_vec(), "{} {}", seg.rendition, seg.sequence);
                for (i, p) in mine.iter().enumerate() {
                    assert_eq!(
                        (p.sequence, p.index as usize, p.audio_group),
                        (seg.sequence, i, seg.audio_group)
                    );
                    assert_eq!(p.init, seg.init);
                    let expect: &[&str] = if i == 0 {
                        &["styp", "moof", "mdat"]
                    } else {
                        &["moof", "mdat"]
                    };
                    assert_eq!(boxes(&p.data), (expect.iter().map(|b| (*b).to_owned()).collect(), 1));
                    if i + 1 < mine.len() {
                        assert!(
                            (180_000..=220_000).contains(&p.duration_us),
                            "{}: part {i} {} us",
                            seg.rendition,
                            p.duration_us
                        );
                    }
                    assert_eq!(p.independent, i == 0 || seg.audio_group, "{} part {i}", seg.rendition);
                }
                let total: u64 = mine.iter().map(|p| p.duration_us).sum();
                assert!(
                    total.abs_diff(seg.duration_us) <= 21_334,
                    "{total} vs {}",
                    seg.duration_us
                );
                if seg.duration_us >= 1_990_000 {
                    assert!(
                        (9..=11).contains(&mine.len()),
                        "{}: {} parts",
                        seg.rendition,
                        mine.len()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(pending.is_empty(), "every part belongs to a segment");
    assert_eq!(checked, 8, "4 video and 4 audio segments");
}

/// An audio-only stream has parts too; MPEG-TS has none.
#[test]
fn audio_only_streams_have_parts_and_ts_has_none() {
    let mut s = segmenter(2000).with_part_target(Some(Duration::from_millis(200)));
    let mut segs = s.audio(0, &audio_config()).unwrap();
    for a in 0..(48_000 * 5 / 1024) {
        segs.extend(s.audio(a * 1024 * 1000 / 48_000, &audio_frame()).unwrap());
    }
    segs.extend(s.flush().unwrap());
    let parts = s.take_parts();
    let joined: Vec<u8> = parts
        .iter()
        .filter(|p| p.sequence == segs[0].sequence)
        .flat_map(|p| p.data.to_vec())
        .collect();
    assert_eq!(joined, segs[0].data.to_vec());
    assert!(parts.iter().all(|p| p.rendition == "source" && !p.audio_group));
    assert!(parts.len() >= 20, "{} parts in 5 s", parts.len());

    let mut ts = Segmenter::new(
        "s".into(),
        1,
        Container::Ts,
        Duration::from_secs(2),
        1 << 20,
        Timeline::default(),
    )
    .with_part_target(Some(Duration::from_millis(200)));
    assert!(!feed(&mut ts, 0, 5, true).is_empty());
    assert!(ts.take_parts().is_empty());
}
