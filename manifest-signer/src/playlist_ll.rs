//! LL-HLS media playlists (RFC 8216bis, Apple's Low-Latency HLS): the classic media playlist of
//! a signed rendition plus its signed parts, rendered deterministically from (manifest
//! rendition, PART statements), so that every node holding the same signed state serves the
//! same bytes. Classic players ignore the LL tags and play the same URL.
//!
//! Parts are content-addressed like segments (`seg/<hash>.m4s`); the preload hint names the
//! next part by position (`part/<rendition>/<seq>.<part>.m4s`), which an origin serves once it
//! is signed.

use std::fmt::Write;

use crate::Hash;
use crate::objects::Rendition;
use crate::playlist::{write_extinf, write_segment_tags};

/// One signed part as the playlist lists it (from its PART statement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePart {
    pub seq: u64,
    pub part: u16,
    pub dur_us: u32,
    pub hash: Hash,
    pub independent: bool,
    /// Its statement names a previous part (`prev`). Part 0 of a segment without one begins a
    /// new publish, a discontinuity or a new init segment.
    pub chained: bool,
}

/// Where another rendition stands, for `EXT-X-RENDITION-REPORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    pub name: String,
    pub last_msn: u64,
    pub last_part: Option<u16>,
}

/// The low-latency inputs of one rendition's playlist.
#[derive(Clone, Debug)]
pub struct LowLatency<'a> {
    /// `PART-TARGET`, microseconds: at least every part's duration.
    pub part_target_us: u64,
    /// This rendition's signed parts in (seq, part) order: those of window segments and of
    /// the segment in progress (seq after the window's last).
    pub parts: &'a [LivePart],
    /// The other renditions of the stream.
    pub reports: &'a [RenditionReport],
    /// A delta update was asked for (`_HLS_skip=YES`).
    pub skip: bool,
}

/// Microseconds as seconds with `digits` fraction digits (3 or 6).
fn secs(us: u64, digits: u32) -> String {
    let div = 10u64.pow(6 - digits);
    let v = us.div_ceil(div);
    let unit = 10u64.pow(digits);
    format!("{}.{:0width$}", v / unit, v % unit, width = digits as usize)
}

/// The parts of segment `seq` when they are all there: indices 0, 1, … with no gap.
fn parts_of(parts: &[LivePart], seq: u64) -> Option<&[LivePart]> {
    let start = parts.iter().position(|p| p.seq == seq)?;
    let len = parts[start..].iter().take_while(|p| p.seq == seq).count();
    let run = &parts[start..start + len];
    run.iter()
        .enumerate()
        .all(|(i, p)| usize::from(p.part) == i)
        .then_some(run)
}

fn write_parts(out: &mut String, parts: &[LivePart]) {
    for p in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"seg/{}.m4s\"",
            secs(u64::from(p.dur_us), 6),
            p.hash
        );
        if p.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// The parts of the segment in progress that the playlist lists: those of the segment numbered
/// after the window's last, from part 0 with no gap, when part 0 is chained (the segment
/// continues the window: same init, no discontinuity). Empty otherwise, and for an empty
/// window: such parts wait for the manifest, which is what a follower and a page can tell
/// from signed state alone.
pub fn in_progress<'a>(r: &Rendition, parts: &'a [LivePart]) -> &'a [LivePart] {
    r.segments
        .last()
        .and_then(|last| parts_of(parts, last.seq + 1))
        .filter(|run| run.first().is_some_and(|p| p.chained))
        .unwrap_or_default()
}

/// Where a rendition stands in its playlist: the media sequence number of its last (possibly
/// partial) segment, and the index of the last part listed of it, if any.
pub fn last_position(r: &Rendition, parts: &[LivePart]) -> Option<(u64, Option<u16>)> {
    let last = r.segments.last()?.seq;
    match in_progress(r, parts).last() {
        Some(p) => Some((p.seq, Some(p.part))),
        None => Some((last, parts_of(parts, last).and_then(|run| run.last()).map(|p| p.part))),
    }
}

/// The LL-HLS media playlist of an fMP4 rendition.
pub fn render_media_ll(r: &Rendition, ll: &LowLatency<'_>) -> String {
    let td = r.target_duration;
    let skip_until_us = 6 * td * 1_000_000;
    let total: u64 = r.segments.iter().map(|s| s.dur_us).sum();
    // A delta update leaves out the segments that start more than CAN-SKIP-UNTIL before the end.
    let mut skipped = 0;
    if ll.skip {
        let mut start = 0;
        for s in &r.segments {
            if total - start <= skip_until_us {
                break;
            }
            start += s.dur_us;
            skipped += 1;
        }
    }
    let mut out = String::with_capacity(512 + r.segments.len() * 160 + ll.parts.len() * 100);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{td}\n",
        if skipped > 0 { 9 } else { 6 }
    );
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={}.0,PART-HOLD-BACK={}",
        6 * td,
        secs(3 * ll.part_target_us, 3)
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(ll.part_target_us, 3));
    let _ = write!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        r.media_sequence(0),
        r.disc_seq
    );
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    // Parts are listed for the segments that end within the last three target durations.
    let parts_from_us = total.saturating_sub(3 * td * 1_000_000);
    let mut current_init: Option<Hash> = None;
    let mut at_us: u64 = r.segments.iter().take(skipped).map(|s| s.dur_us).sum();
    for s in r.segments.iter().skip(skipped) {
        write_segment_tags(&mut out, s, &mut current_init);
        at_us += s.dur_us;
        if at_us > parts_from_us
            && let Some(run) = parts_of(ll.parts, s.seq)
        {
            write_parts(&mut out, run);
        }
        write_extinf(&mut out, s, r.container);
    }
    if r.ended {
        out.push_str("#EXT-X-ENDLIST\n");
        return out;
    }
    // The segment in progress: its parts so far, then a hint of the next one. They are listed
    // only when the segment continues the window (it is numbered next and its part 0 is
    // chained), so it plays with the window's init and no discontinuity: what a follower and
    // a page can tell from signed state alone. Otherwise they wait for the manifest.
    // An empty window (before the first segment) has neither, nor an init to play them with.
    if let Some(last) = r.segments.last() {
        let next = last.seq + 1;
        let run = in_progress(r, ll.parts);
        write_parts(&mut out, run);
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/{}/{next}.{}.m4s\"",
            r.name,
            run.len()
        );
    }
    for rep in ll.reports {
        let _ = write!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"{}.m3u8\",LAST-MSN={}",
            rep.name, rep.last_msn
        );
        if let Some(p) = rep.last_part {
            let _ = write!(out, ",LAST-PART={p}");
        }
        out.push('\n');
    }
    out
}

/// The classic playlist inside an LL-HLS one: without the low-latency tags and without what
/// follows the last segment but `EXT-X-ENDLIST` (the segment in progress). For a playlist
/// rendered by [`render_media_ll`] without a delta update, this is exactly
/// [`crate::playlist::render_media`] of the same rendition.
pub fn classic_of(ll: &str) -> String {
    const LL_TAGS: [&str; 6] = [
        "#EXT-X-SERVER-CONTROL:",
        "#EXT-X-PART-INF:",
        "#EXT-X-PART:",
        "#EXT-X-PRELOAD-HINT:",
        "#EXT-X-RENDITION-REPORT:",
        "#EXT-X-SKIP:",
    ];
    let lines: Vec<&str> = ll
        .lines()
        .filter(|l| !LL_TAGS.iter().any(|t| l.starts_with(t)))
        .collect();
    let last_uri = lines.iter().rposition(|l| !l.starts_with('#') && !l.is_empty());
    let mut out = String::with_capacity(ll.len());
    for (i, l) in lines.iter().enumerate() {
        if last_uri.is_none_or(|u| i > u) && i > 0 && *l != "#EXT-X-ENDLIST" && !is_header(l) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The playlist-wide tags before the first segment.
fn is_header(line: &str) -> bool {
    [
        "#EXT-X-VERSION:",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-DISCONTINUITY-SEQUENCE:",
    ]
    .iter()
    .any(|t| line.starts_with(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Container, SegmentRef};

    fn rendition(segments: u64) -> Rendition {
        let init = Hash::of(b"init");
        Rendition {
            segments: (0..segments)
                .map(|seq| SegmentRef {
                    seq,
                    dur_us: 1_000_000,
                    hash: Hash::of(&seq.to_be_bytes()),
                    size: 100,
                    disc: false,
                    pdt_ms: Some(1_800_000_000_000 + seq * 1000),
                    init: Some(init),
                    independent: None,
                })
                .collect(),
            ..Rendition::new("source", Container::Fmp4, 1)
        }
    }

    fn parts(seqs: std::ops::Range<u64>, per: u16) -> Vec<LivePart> {
        seqs.flat_map(|seq| {
            (0..per).map(move |part| LivePart {
                seq,
                part,
                dur_us: 200_000,
                hash: Hash::of(&[seq as u8, part as u8]),
                independent: part == 0,
                chained: true,
            })
        })
        .collect()
    }

    #[test]
    fn parts_of_recent_segments_and_the_one_in_progress_then_a_hint() {
        let r = rendition(8);
        let mut list = parts(4..8, 5);
        list.extend(parts(8..9, 2));
        let reports = [RenditionReport {
            name: "audio".into(),
            last_msn: 8,
            last_part: Some(1),
        }];
        let ll = LowLatency {
            part_target_us: 220_000,
            parts: &list,
            reports: &reports,
            skip: false,
        };
        let text = render_media_ll(&r, &ll);
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.660\n#EXT-X-PART-INF:PART-TARGET=0.220\n#EXT-X-MEDIA-SEQUENCE:0\n"
        ), "{text}");
        // Segments 5, 6 and 7 end within the last 3 s: their parts are listed; 4's are not.
        assert_eq!(text.matches("#EXT-X-PART:").count(), 3 * 5 + 2, "{text}");
        assert_eq!(text.matches("INDEPENDENT=YES").count(), 4, "{text}");
        assert!(text.contains("#EXT-X-PART:DURATION=0.200000,URI=\"seg/"), "{text}");
        assert!(text.ends_with(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/source/8.2.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=8,LAST-PART=1\n"
        ), "{text}");
        assert_eq!(last_position(&r, &list), Some((8, Some(1))));
        assert_eq!(classic_of(&text), crate::playlist::render_media(&r), "{text}");
        // A segment in progress whose part 0 is not chained (a new publish or init) waits
        // for the manifest: its parts are not listed, the hint asks for its part 0.
        let mut fresh = list.clone();
        let at = fresh.iter().position(|p| (p.seq, p.part) == (8, 0)).unwrap();
        fresh[at].chained = false;
        let text_fresh = render_media_ll(
            &r,
            &LowLatency {
                parts: &fresh,
                ..ll.clone()
            },
        );
        assert_eq!(text_fresh.matches("#EXT-X-PART:").count(), 3 * 5, "{text_fresh}");
        assert!(text_fresh.contains("URI=\"part/source/8.0.m4s\""), "{text_fresh}");
        assert_eq!(classic_of(&text_fresh), crate::playlist::render_media(&r));
        // Parts of a later number than the next one (a skipped number) are not listed either.
        let mut skipped = parts(4..8, 5);
        skipped.extend(parts(9..10, 2));
        let text_skip = render_media_ll(
            &r,
            &LowLatency {
                parts: &skipped,
                ..ll.clone()
            },
        );
        assert_eq!(text_skip.matches("#EXT-X-PART:").count(), 3 * 5, "{text_skip}");
        let mut none = rendition(0);
        none.segments.clear();
        let empty = render_media_ll(&none, &ll);
        assert!(
            !empty.contains("#EXT-X-PART:") && !empty.contains("PRELOAD-HINT"),
            "{empty}"
        );
        assert_eq!(classic_of(&empty), crate::playlist::render_media(&none));
        assert_eq!(render_media_ll(&r, &ll), text, "deterministic");

        // A delta update skips what starts more than 6 target durations before the end.
        let skip = LowLatency {
            skip: true,
            ..ll.clone()
        };
        let delta = render_media_ll(&r, &skip);
        assert!(delta.contains("#EXT-X-VERSION:9\n"), "{delta}");
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"), "{delta}");
        assert_eq!(delta.matches("#EXTINF").count(), 6);

        // An ended rendition: no hint, no parts in progress.
        let mut ended = r.clone();
        ended.ended = true;
        let text = render_media_ll(&ended, &ll);
        assert!(
            text.ends_with("#EXT-X-ENDLIST\n") && !text.contains("PRELOAD-HINT"),
            "{text}"
        );
        assert_eq!(classic_of(&text), crate::playlist::render_media(&ended));
    }

    #[test]
    fn an_incomplete_run_of_parts_is_not_listed() {
        let r = rendition(3);
        let mut list = parts(2..3, 5);
        list.remove(0); // part 0 of segment 2 missing
        let ll = LowLatency {
            part_target_us: 220_000,
            parts: &list,
            reports: &[],
            skip: false,
        };
        let text = render_media_ll(&r, &ll);
        assert!(!text.contains("#EXT-X-PART:"), "{text}");
        assert!(text.contains("URI=\"part/source/3.0.m4s\""), "{text}");
    }
}
