//! LL-HLS on the origin (RFC 8216bis §6.2.5): media playlists with the signed parts, blocking
//! reloads (`_HLS_msn`, `_HLS_part`), delta updates (`_HLS_skip`) and the preload hint's part
//! by position. The decisions (what a request asks for, whether the state answers it) are
//! plain functions; the handlers only wait and render.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use manifest_signer::objects::{Container, Rendition};
use manifest_signer::playlist_ll::{self, LivePart, LowLatency, RenditionReport};

use super::body::{Caching, Source, respond};
use super::{AppState, HttpError};
use crate::catalog::StreamView;

const M3U8: &str = "application/vnd.apple.mpegurl";

/// What a playlist request asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ask {
    /// `_HLS_msn`, with `_HLS_part` if given.
    pub block: Option<(u64, Option<u16>)>,
    pub skip: bool,
    /// `hlswarm_parts=<seq>.<part>` (or `-` for all): append the PART statements held after
    /// that position, so that a verifying page gets the playlist and the signatures of its
    /// new parts in one round trip.
    pub statements: Option<Option<(u64, u16)>>,
}

/// The line that carries one PART statement after an LL-HLS playlist: a comment to players
/// (it is not an `#EXT` tag), base64url of the statement's wire bytes.
pub const STATEMENT_PREFIX: &str = "#HLSWARM-PART:";

/// Parses the query of a media playlist request. `Err` is the 400 body.
pub fn parse_query(query: Option<&str>) -> Result<Ask, &'static str> {
    let (mut msn, mut part, mut skip, mut statements) = (None, None, false, None);
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()).take(16) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "_HLS_msn" => msn = Some(v.parse::<u64>().map_err(|_| "_HLS_msn is not a number\n")?),
            "_HLS_part" => part = Some(v.parse::<u16>().map_err(|_| "_HLS_part is not a part index\n")?),
            "_HLS_skip" => skip = v == "YES" || v == "v2",
            "hlswarm_parts" if v == "-" => statements = Some(None),
            "hlswarm_parts" => {
                let (s, p) = v.split_once('.').ok_or("hlswarm_parts is not <seq>.<part> or -\n")?;
                let pos = (
                    s.parse().map_err(|_| "bad hlswarm_parts seq\n")?,
                    p.parse().map_err(|_| "bad hlswarm_parts part\n")?,
                );
                statements = Some(Some(pos));
            }
            _ => {}
        }
    }
    if part.is_some() && msn.is_none() {
        return Err("_HLS_part without _HLS_msn\n");
    }
    Ok(Ask {
        block: msn.map(|m| (m, part)),
        skip,
        statements,
    })
}

/// Whether the rendition's state answers a blocking request for part `part` of segment `msn`
/// (the whole segment when `part` is `None`). A part index past a complete segment's last
/// part asks for part 0 of the next segment (RFC 8216bis §6.2.5.2).
pub fn answers(r: &Rendition, parts: &[LivePart], msn: u64, part: Option<u16>) -> bool {
    let complete = |seq: u64| r.segments.last().is_some_and(|s| s.seq >= seq);
    // Only what the playlist lists answers: a held part it leaves out (a fresh segment in
    // progress) would otherwise answer at once, again and again.
    let listed = playlist_ll::in_progress(r, parts);
    let has_part = |seq: u64, p: u16| listed.iter().any(|x| (x.seq, x.part) >= (seq, p));
    match part {
        None => complete(msn),
        Some(p) if complete(msn) => {
            let count = parts.iter().filter(|x| x.seq == msn).count();
            usize::from(p) < count || count == 0 || complete(msn + 1) || has_part(msn + 1, 0)
        }
        Some(p) => has_part(msn, p),
    }
}

/// Whether a request for segment `msn` is too far ahead to wait for: more than two segments
/// after the last one (RFC 8216bis: 400).
pub fn too_far(r: &Rendition, parts: &[LivePart], msn: u64) -> bool {
    let last = playlist_ll::last_position(r, parts).map_or(0, |(m, _)| m);
    msn > last + 2
}

/// The media playlist of `name` as LL-HLS, when this node has parts (fMP4 renditions), after
/// waiting (at most three target durations) for what a blocking request asks; `None`: serve
/// the classic playlist.
pub async fn media(
    state: &AppState,
    mut view: Arc<StreamView>,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<Response>, HttpError> {
    let parts = state.catalog.parts();
    let rendition_name = name.strip_suffix(".m3u8").unwrap_or(name);
    let wait = {
        let r = view
            .manifest
            .body
            .rendition(rendition_name)
            .ok_or(HttpError::NotFound)?;
        // A rendition without a signed PART-TARGET (no parts; MPEG-TS never has one, the
        // manifest's validation refuses it there): classic HLS.
        if r.part_target_us.is_none() {
            return Ok(None);
        }
        Duration::from_secs(3 * r.target_duration.max(1))
    };
    let ask = parse_query(query).map_err(HttpError::BadRequest)?;
    let mut changed = parts.changed();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let r = view
            .manifest
            .body
            .rendition(rendition_name)
            .ok_or(HttpError::NotFound)?;
        // The signed PART-TARGET; a manifest signed meanwhile without one: classic HLS.
        let Some(part_target_us) = r.part_target_us else {
            return Ok(None);
        };
        let held = parts.rendition(&view.id, rendition_name);
        match ask.block {
            Some((msn, _)) if too_far(r, &held, msn) => {
                return Err(HttpError::BadRequest("_HLS_msn is more than two segments ahead\n"));
            }
            Some((msn, part)) if !answers(r, &held, msn, part) && !r.ended => {
                if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                    return Ok(Some(unavailable()));
                }
                view = state.catalog.get(&view.id).ok_or(HttpError::NotFound)?;
                continue;
            }
            _ => {}
        }
        let reports: Vec<RenditionReport> = view
            .manifest
            .body
            .renditions
            .iter()
            .filter(|o| o.name != r.name && o.container == Container::Fmp4)
            .filter_map(|o| {
                let p = parts.rendition(&view.id, &o.name);
                let (last_msn, last_part) = playlist_ll::last_position(o, &p)?;
                Some(RenditionReport {
                    name: o.name.clone(),
                    last_msn,
                    last_part,
                })
            })
            .collect();
        let mut text = playlist_ll::render_media_ll(
            r,
            &LowLatency {
                part_target_us,
                parts: &held,
                reports: &reports,
                skip: ask.skip,
            },
        );
        if let Some(after) = ask.statements {
            use base64::Engine as _;
            for wire in parts.statements_after(&view.id, rendition_name, after) {
                text.push_str(STATEMENT_PREFIX);
                text.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wire));
                text.push('\n');
            }
        }
        let etag = format!("\"{}\"", &blake3::hash(text.as_bytes()).to_hex()[..32]);
        return respond(headers, Source::Memory(text.into()), M3U8, Caching::Live, Some(&etag))
            .await
            .map(Some);
    }
}

/// `part/<rendition>/<seq>.<part>.m4s`: the part the preload hint names, once it is signed
/// (the request waits up to three part targets for it, then 404s).
pub async fn part(
    state: &AppState,
    view: &StreamView,
    rendition: &str,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response, HttpError> {
    const BAD: HttpError = HttpError::BadRequest("malformed part name\n");
    let (seq, part) = file.strip_suffix(".m4s").and_then(|s| s.split_once('.')).ok_or(BAD)?;
    let (seq, part): (u64, u16) = (seq.parse().map_err(|_| BAD)?, part.parse().map_err(|_| BAD)?);
    let parts = state.catalog.parts();
    let target_us = view
        .manifest
        .body
        .rendition(rendition)
        .and_then(|r| r.part_target_us)
        .ok_or(HttpError::NotFound)?;
    let target = Duration::from_micros(target_us);
    let deadline = tokio::time::Instant::now() + target * 3;
    let mut changed = parts.changed();
    loop {
        if let Some((hash, bytes)) = parts.at(&view.id, rendition, seq, part) {
            let etag = format!("\"{hash}\"");
            return respond(
                headers,
                Source::Memory(bytes),
                "video/iso.segment",
                Caching::Immutable,
                Some(&etag),
            )
            .await;
        }
        if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
            return Err(HttpError::NotFound);
        }
    }
}

/// 503 once a blocking reload has waited three target durations (RFC 8216bis §6.2.5.2).
fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        "the requested part did not appear within three target durations\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifest_signer::objects::SegmentRef;

    #[test]
    fn queries() {
        assert_eq!(parse_query(None), Ok(Ask::default()));
        assert_eq!(
            parse_query(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")),
            Ok(Ask {
                block: Some((12, Some(3))),
                skip: true,
                statements: None,
            })
        );
        assert_eq!(parse_query(Some("_HLS_msn=12")).unwrap().block, Some((12, None)));
        assert!(parse_query(Some("_HLS_part=3")).is_err(), "part without msn: 400");
        assert!(parse_query(Some("_HLS_msn=x")).is_err());
        assert!(parse_query(Some("_HLS_msn=1&_HLS_part=70000")).is_err());
        assert_eq!(parse_query(Some("v=2&_HLS_skip=NO")), Ok(Ask::default()));
        assert_eq!(parse_query(Some("hlswarm_parts=-")).unwrap().statements, Some(None));
        assert_eq!(
            parse_query(Some("hlswarm_parts=7.2")).unwrap().statements,
            Some(Some((7, 2)))
        );
        assert!(parse_query(Some("hlswarm_parts=7")).is_err());
    }

    fn rendition(last_seq: u64) -> Rendition {
        let mut r = Rendition::new("source", Container::Fmp4, 1);
        r.segments = (0..=last_seq)
            .map(|seq| SegmentRef {
                seq,
                dur_us: 1_000_000,
                hash: manifest_signer::Hash::of(&seq.to_be_bytes()),
                size: 1,
                disc: false,
                pdt_ms: None,
                init: Some(manifest_signer::Hash::of(b"init")),
                independent: None,
            })
            .collect();
        r
    }

    fn part(seq: u64, part: u16) -> LivePart {
        LivePart {
            seq,
            part,
            dur_us: 200_000,
            hash: manifest_signer::Hash::of(&[seq as u8, part as u8]),
            independent: part == 0,
            chained: true,
        }
    }

    #[test]
    fn blocking_requests_are_answered_by_the_part_or_anything_later() {
        let r = rendition(4); // segments 0..=4 complete
        let parts: Vec<LivePart> = (0..5).map(|p| part(4, p)).chain((0..2).map(|p| part(5, p))).collect();
        assert!(answers(&r, &parts, 5, Some(1)), "held");
        assert!(!answers(&r, &parts, 5, Some(2)), "next part: wait");
        assert!(!answers(&r, &parts, 5, None), "segment 5 not complete: wait");
        assert!(answers(&r, &parts, 4, None));
        // Past the last part of a complete segment: part 0 of the next one, which is held.
        assert!(answers(&r, &parts, 4, Some(7)));
        assert!(!too_far(&r, &parts, 7));
        assert!(too_far(&r, &parts, 8), "more than two segments ahead: 400");
    }
}
