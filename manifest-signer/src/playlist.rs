//! Deterministic HLS playlists rendered from a MANIFEST_ROOT: every node serves byte-identical
//! playlists for the same signed manifest (docs/PROTOCOL.md §10).
//!
//! Paths are relative to `/streams/<stream_id>/`: `master.m3u8`, `<rendition>.m3u8`,
//! `seg/<hash>.m4s|ts`, `seg/<hash>.mp4` (init).

use std::fmt::Write;

use crate::Hash;
use crate::objects::{Container, INIT_EXT, ManifestRoot, Rendition};

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

/// The master playlist: one EXT-X-STREAM-INF per rendition, in manifest order.
/// EXT-X-INDEPENDENT-SEGMENTS only while every window segment begins with a keyframe.
pub fn render_master(m: &ManifestRoot) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    if m.renditions
        .iter()
        .flat_map(|r| &r.segments)
        .all(|s| s.is_independent())
    {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    for r in &m.renditions {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={}",
            r.bandwidth.unwrap_or_else(|| peak_bandwidth(r)).max(1)
        );
        if let Some(avg) = r.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
        }
        if let Some(c) = &r.codecs {
            let _ = write!(out, ",CODECS=\"{c}\"");
        }
        if let Some(res) = &r.resolution {
            let _ = write!(out, ",RESOLUTION={res}");
        }
        if let Some(f) = r.frame_rate_milli {
            let _ = write!(out, ",FRAME-RATE={}.{:03}", f / 1000, f % 1000);
        }
        let _ = write!(out, "\n{}\n", media_playlist_name(&r.name));
    }
    out
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
        if s.disc {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(init) = s.init
            && current_init != Some(init)
        {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_path(&init));
            current_init = Some(init);
        }
        if let Some(pdt) = s.pdt_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(pdt));
        }
        let _ = write!(
            out,
            "#EXTINF:{}.{:06},\n{}\n",
            s.dur_us / 1_000_000,
            s.dur_us % 1_000_000,
            segment_path(&s.hash, r.container)
        );
    }
    if r.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
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

    #[test]
    fn pdt_formatting() {
        assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_pdt(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_pdt(1_795_225_323_456), "2026-11-21T01:42:03.456Z");
    }
}
