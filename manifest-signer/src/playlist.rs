//! Deterministic HLS playlists rendered from a MANIFEST_ROOT: every node serves byte-identical
//! playlists for the same signed manifest (docs/PROTOCOL.md §10).
//!
//! Paths are relative to `/streams/<stream_id>/`: `master.m3u8`, `<rendition>.m3u8`,
//! `seg/<hash>.m4s|ts`, `seg/<hash>.mp4` (init).

use std::fmt::Write;

use crate::Hash;
use crate::objects::{Container, INIT_EXT, ManifestRoot, Rendition, RenditionKind, SegmentRef};

/// File name of the master playlist.
pub const MASTER: &str = "master.m3u8";

/// Path of a media segment relative to the stream directory.
pub fn segment_path(hash: &Hash, container: Container) -> String {
    format!("seg/{hash}.{}", container.media_ext())
}

/// Path of an init segment relative to the stream directory.
pub fn init_path(hash: &Hash) -> String {
    format!("seg/{hash}.{INIT_EXT}")
}

/// File name of a rendition's media playlist.
pub fn media_playlist_name(rendition: &str) -> String {
    format!("{rendition}.m3u8")
}

/// GROUP-ID of the alternative audio renditions (protocol 1.4).
pub const AUDIO_GROUP: &str = "audio";

/// The master playlist (docs/PROTOCOL.md §10.1), in manifest order. EXT-X-INDEPENDENT-SEGMENTS
/// only while every window segment begins with a keyframe.
///
/// Without both audio renditions (`kind: audio`) and other renditions, every rendition is an
/// EXT-X-STREAM-INF, kind ignored (as before 1.4). With both, the audio renditions form the
/// EXT-X-MEDIA group `audio` and every other rendition is a variant that plays with it: its
/// BANDWIDTH, AVERAGE-BANDWIDTH and CODECS count the audio in (RFC 8216 §4.3.4.2).
pub fn render_master(m: &ManifestRoot) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    if m.renditions
        .iter()
        .flat_map(|r| &r.segments)
        .all(|s| s.is_independent())
    {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let (audio, video): (Vec<&Rendition>, Vec<&Rendition>) =
        m.renditions.iter().partition(|r| r.kind == Some(RenditionKind::Audio));
    if audio.is_empty() || video.is_empty() {
        for r in &m.renditions {
            write_stream_inf(&mut out, r, None);
        }
        return out;
    }
    for (i, a) in audio.iter().enumerate() {
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"{}\",DEFAULT={},AUTOSELECT=YES",
            a.name,
            if i == 0 { "YES" } else { "NO" }
        );
        if let Some(ch) = a.channels {
            let _ = write!(out, ",CHANNELS=\"{ch}\"");
        }
        let _ = writeln!(out, ",URI=\"{}\"", media_playlist_name(&a.name));
    }
    let mut codecs: Vec<&str> = Vec::new();
    for c in audio.iter().filter_map(|a| a.codecs.as_deref()) {
        if !codecs.contains(&c) {
            codecs.push(c);
        }
    }
    let group = AudioGroup {
        bandwidth: audio.iter().map(|a| u128::from(bandwidth(a))).max().unwrap_or(0),
        average_bandwidth: audio
            .iter()
            .filter_map(|a| a.average_bandwidth)
            .max()
            .map_or(0, u128::from),
        codecs,
    };
    for v in video {
        write_stream_inf(&mut out, v, Some(&group));
    }
    out
}

/// What the audio group adds to each variant that plays with it.
struct AudioGroup<'a> {
    /// The largest BANDWIDTH of the group's renditions.
    bandwidth: u128,
    /// The largest `average_bandwidth` of the group's renditions that have one, else 0.
    average_bandwidth: u128,
    /// The distinct `codecs` of the group's renditions, in manifest order.
    codecs: Vec<&'a str>,
}

/// BANDWIDTH of one rendition on its own: `bandwidth`, else the window peak; at least 1.
fn bandwidth(r: &Rendition) -> u64 {
    r.bandwidth.unwrap_or_else(|| peak_bandwidth(r)).max(1)
}

fn write_stream_inf(out: &mut String, r: &Rendition, audio: Option<&AudioGroup<'_>>) {
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={}",
        u128::from(bandwidth(r)) + audio.map_or(0, |a| a.bandwidth)
    );
    if let Some(avg) = r.average_bandwidth {
        let _ = write!(
            out,
            ",AVERAGE-BANDWIDTH={}",
            u128::from(avg) + audio.map_or(0, |a| a.average_bandwidth)
        );
    }
    if let Some(c) = &r.codecs {
        let _ = write!(out, ",CODECS=\"{c}");
        for ac in audio.map(|a| a.codecs.as_slice()).unwrap_or_default() {
            let _ = write!(out, ",{ac}");
        }
        out.push('"');
    }
    if let Some(res) = &r.resolution {
        let _ = write!(out, ",RESOLUTION={res}");
    }
    if let Some(f) = r.frame_rate_milli {
        let _ = write!(out, ",FRAME-RATE={}.{:03}", f / 1000, f % 1000);
    }
    if audio.is_some() {
        let _ = write!(out, ",AUDIO=\"{AUDIO_GROUP}\"");
    }
    let _ = write!(out, "\n{}\n", media_playlist_name(&r.name));
}

/// The BANDWIDTH of a manifest without `bandwidth` (protocol 1.0 signers): the highest single
/// segment bit rate in the window. Kept as it was so every node renders such manifests alike;
/// signers now sign `bandwidth` measured per RFC 8216 (crate::bandwidth).
pub fn peak_bandwidth(r: &Rendition) -> u64 {
    r.segments
        .iter()
        .map(|s| (u128::from(s.size) * 8 * 1_000_000 / u128::from(s.dur_us.max(1))) as u64)
        .max()
        .unwrap_or(0)
}

/// One rendition's media playlist.
pub fn render_media(r: &Rendition) -> String {
    let version = match r.container {
        Container::Fmp4 => 6,
        Container::Ts => 3,
    };
    let mut out = String::with_capacity(256 + r.segments.len() * 160);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        r.target_duration,
        r.media_sequence(0),
        r.disc_seq
    );
    let mut current_init: Option<Hash> = None;
    for s in &r.segments {
        write_segment_tags(&mut out, s, &mut current_init);
        write_extinf(&mut out, s, r.container);
    }
    if r.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The tags before a segment's EXTINF: a discontinuity, its init when it changes (tracked in
/// `current_init`), its program date-time.
pub(crate) fn write_segment_tags(out: &mut String, s: &SegmentRef, current_init: &mut Option<Hash>) {
    if s.disc {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let Some(init) = s.init
        && *current_init != Some(init)
    {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_path(&init));
        *current_init = Some(init);
    }
    if let Some(pdt) = s.pdt_ms {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(pdt));
    }
}

/// A segment's EXTINF line and URI.
pub(crate) fn write_extinf(out: &mut String, s: &SegmentRef, container: Container) {
    let _ = write!(
        out,
        "#EXTINF:{}.{:06},\n{}\n",
        s.dur_us / 1_000_000,
        s.dur_us % 1_000_000,
        segment_path(&s.hash, container)
    );
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn format_pdt(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{LogHead, SegmentRef};
    use crate::{Hash, StreamKey};

    fn rendition(name: &str) -> Rendition {
        Rendition::new(name, Container::Ts, 2)
    }

    fn manifest(renditions: Vec<Rendition>) -> ManifestRoot {
        ManifestRoot {
            stream: StreamKey::from_seed([1; 32]).stream_id(),
            seq: 0,
            time_ms: 0,
            prev: None,
            renditions,
            log: LogHead {
                size: 0,
                root: Hash::of(b""),
            },
        }
    }

    fn audio(name: &str) -> Rendition {
        Rendition {
            kind: Some(RenditionKind::Audio),
            ..rendition(name)
        }
    }

    /// The same cases and expected bytes are in web-client/test/verifier.test.js.
    #[test]
    fn audio_group_rendering() {
        let a1 = Rendition {
            codecs: Some("mp4a.40.2".into()),
            bandwidth: Some(100),
            average_bandwidth: Some(90),
            ..audio("a1")
        };
        let v1 = Rendition {
            codecs: Some("avc1.64001f".into()),
            bandwidth: Some(1000),
            average_bandwidth: Some(900),
            resolution: Some("1280x720".into()),
            frame_rate_milli: Some(29_970),
            ..rendition("v1")
        };
        // No bandwidth: the window peak, 250 B over 2 s = 1000 b/s. Same codecs as a1.
        let a2 = Rendition {
            codecs: Some("mp4a.40.2".into()),
            channels: Some(6),
            segments: vec![SegmentRef {
                seq: 0,
                dur_us: 2_000_000,
                hash: Hash::of(b"a2"),
                size: 250,
                disc: false,
                pdt_ms: None,
                init: None,
                independent: None,
            }],
            ..audio("a2")
        };
        let v2 = rendition("v2");
        let a3 = Rendition {
            codecs: Some("ec-3".into()),
            bandwidth: Some(50),
            average_bandwidth: Some(40),
            ..audio("a3")
        };
        let m = manifest(vec![a1.clone(), v1, a2, v2, a3]);
        let master = render_master(&m);
        assert_eq!(
            master,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"a1\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a1.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"a2\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"6\",URI=\"a2.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"a3\",DEFAULT=NO,AUTOSELECT=YES,URI=\"a3.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2000,AVERAGE-BANDWIDTH=990,CODECS=\"avc1.64001f,mp4a.40.2,ec-3\",\
             RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO=\"audio\"\nv1.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1001,AUDIO=\"audio\"\nv2.m3u8\n"
        );
        // An HLS parser reads it as one audio group that both variants name.
        let Ok(m3u8_rs::Playlist::MasterPlaylist(p)) = m3u8_rs::parse_playlist_res(master.as_bytes()) else {
            panic!("{master}");
        };
        let alts: Vec<_> = p
            .alternatives
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.group_id.as_str(),
                    a.default,
                    a.autoselect,
                    a.channels.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            alts,
            [
                ("a1", "audio", true, true, None),
                ("a2", "audio", false, true, Some("6")),
                ("a3", "audio", false, true, None)
            ]
        );
        let variants: Vec<_> = p
            .variants
            .iter()
            .map(|v| (v.uri.as_str(), v.bandwidth, v.audio.as_deref()))
            .collect();
        assert_eq!(
            variants,
            [("v1.m3u8", 2000, Some("audio")), ("v2.m3u8", 1001, Some("audio"))]
        );
        // Only audio renditions: no group, each a variant as before 1.4.
        assert_eq!(
            render_master(&manifest(vec![a1])),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=100,AVERAGE-BANDWIDTH=90,CODECS=\"mp4a.40.2\"\na1.m3u8\n"
        );
    }

    #[test]
    fn audio_group_sums_do_not_overflow() {
        let v = Rendition {
            bandwidth: Some(u64::MAX),
            average_bandwidth: Some(u64::MAX),
            ..rendition("v")
        };
        let a = Rendition {
            bandwidth: Some(u64::MAX),
            average_bandwidth: Some(u64::MAX),
            ..audio("a")
        };
        let master = render_master(&manifest(vec![v, a]));
        assert!(
            master.contains("BANDWIDTH=36893488147419103230,AVERAGE-BANDWIDTH=36893488147419103230,AUDIO="),
            "{master}"
        );
    }

    #[test]
    fn pdt_formatting() {
        assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_pdt(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_pdt(1_795_225_323_456), "2026-11-21T01:42:03.456Z");
    }
}
