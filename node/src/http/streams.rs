//! `/streams/<id>/...`: the stream's HTTP layout (PROTOCOL §11).
//!
//! Playlists come from the snapshot rendered at the manifest's acceptance, never from disk, so
//! they are byte-identical on every node. Segments are verified against their name (BLAKE3)
//! before they leave the node: a corrupted or tampered file on disk is refused, logged and
//! counted, not forwarded. A followed stream whose served manifest has lagged a newer known one
//! for 10 s (`crate::lag`) answers its manifest and playlists with 503: the old state is not
//! presented as the live edge to players or to mirrors copying this node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use manifest_signer::Hash;
use manifest_signer::store::{ANNOUNCE_FILE, LOG_FILE, MANIFEST_FILE, SEGMENT_DIR};
use tokio::sync::Semaphore;

use super::body::{Caching, Source, respond};
use super::{AppState, HttpError};
use crate::catalog::StreamView;
use crate::metrics::FailureSource;

const M3U8: &str = "application/vnd.apple.mpegurl";
const JSON: &str = "application/json";
/// Segments up to this size are read whole, verified, cached and served from memory.
const WHOLE_READ_MAX: u64 = 8 * 1024 * 1024;
/// Concurrent whole-file reads (bounds the memory they take to 8 x 8 MiB).
static READS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(8));
/// Longest viewer id taken from `X-Hlswarm-Viewer`.
const MAX_VIEWER_ID: usize = 64;

fn stream(state: &AppState, id: &str) -> Result<Arc<StreamView>, HttpError> {
    state
        .catalog
        .get_by_name(id)
        .map_err(|()| HttpError::BadRequest("malformed stream id\n"))?
        .ok_or(HttpError::NotFound)
}

fn note_viewer(state: &AppState, view: &StreamView, headers: &HeaderMap, peer: SocketAddr) {
    let id = headers
        .get("x-hlswarm-viewer")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= MAX_VIEWER_ID);
    match id {
        Some(v) => state.catalog.saw_viewer(&view.id, v),
        None => {
            let ip = super::client_ip(peer, headers, &state.node.trusted_proxies);
            state.catalog.saw_viewer(&view.id, &ip.to_string());
        }
    }
}

/// Playlists, the signed objects and the log.
pub async fn file(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let view = stream(&state, &id)?;
    let live = file == MANIFEST_FILE || file.ends_with(".m3u8");
    if live && let Some(s) = state.catalog.stale(&view.id) {
        crate::metrics::SwarmMetrics::add(&state.catalog.metrics().http_sources.stale_refusals, 1);
        return Ok(stale(s));
    }
    match file.as_str() {
        MANIFEST_FILE => {
            note_viewer(&state, &view, &headers, peer);
            let etag = format!("\"{}\"", view.manifest.id);
            let body = Source::Memory(view.manifest_wire.clone());
            respond(&headers, body, JSON, Caching::Live, Some(&etag)).await
        }
        ANNOUNCE_FILE => {
            let (Some(wire), Some(a)) = (&view.announce_wire, &view.announce) else {
                return Err(HttpError::NotFound);
            };
            let etag = format!("\"{}\"", a.id);
            respond(&headers, Source::Memory(wire.clone()), JSON, Caching::Live, Some(&etag)).await
        }
        LOG_FILE => {
            // Append-only: serve the length it has now; a reader re-fetches for more.
            let path = view.dir.join(LOG_FILE);
            let len = tokio::fs::metadata(&path).await.map_err(HttpError::from_io)?.len();
            let body = Source::File { path: &path, len };
            respond(&headers, body, "application/x-ndjson", Caching::Live, None).await
        }
        name if name.ends_with(".m3u8") => {
            if name != manifest_signer::playlist::MASTER
                && let Some(resp) = super::ll::media(&state, view.clone(), name, query.as_deref(), &headers).await?
            {
                note_viewer(&state, &view, &headers, peer);
                return Ok(resp);
            }
            let pl = if name == manifest_signer::playlist::MASTER {
                &view.master
            } else {
                view.media.get(name).ok_or(HttpError::NotFound)?
            };
            note_viewer(&state, &view, &headers, peer);
            respond(
                &headers,
                Source::Memory(pl.bytes.clone()),
                M3U8,
                Caching::Live,
                Some(&pl.etag),
            )
            .await
        }
        _ => Err(HttpError::NotFound),
    }
}

/// 503 for a stream whose served manifest is stale: players retry, mirrors back off and ask
/// another source.
fn stale(s: crate::lag::Stale) -> Response {
    let body = format!(
        "this node is behind the stream: it holds manifest {} but {} exists and its segments cannot be fetched yet; try another source\n",
        s.served, s.newest
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2"), (header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// `seg/<64 lowercase hex>.<m4s|ts|mp4>`.
fn parse_segment_name(file: &str) -> Result<(Hash, &'static str, &'static str), HttpError> {
    const BAD: HttpError = HttpError::BadRequest("malformed segment name\n");
    let (hex, ext) = file.split_once('.').ok_or(BAD)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(BAD);
    }
    let (ext, ctype) = match ext {
        "m4s" => ("m4s", "video/iso.segment"),
        "ts" => ("ts", "video/mp2t"),
        "mp4" => ("mp4", "video/mp4"),
        _ => return Err(BAD),
    };
    Ok((hex.parse().map_err(|_| BAD)?, ext, ctype))
}

/// `part/<rendition>/<seq>.<part>.m4s`, the preload hint's target.
pub async fn part(
    State(state): State<AppState>,
    Path((id, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let view = stream(&state, &id)?;
    super::ll::part(&state, &view, &rendition, &file, &headers).await
}

pub async fn segment(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let view = stream(&state, &id)?;
    let (hash, ext, ctype) = parse_segment_name(&file)?;
    let etag = format!("\"{hash}\"");
    let cache = state.catalog.cache();
    if ext == "m4s"
        && let Some(bytes) = state.catalog.parts().bytes(&view.id, &hash)
    {
        // A signed LL-HLS part (of the segment in progress, or of a recent one).
        return respond(&headers, Source::Memory(bytes), ctype, Caching::Immutable, Some(&etag)).await;
    }
    if let Some((cached_ext, bytes)) = cache.get(&hash) {
        if cached_ext != ext {
            return Err(HttpError::NotFound);
        }
        return respond(&headers, Source::Memory(bytes), ctype, Caching::Immutable, Some(&etag)).await;
    }
    let path: PathBuf = view.dir.join(SEGMENT_DIR).join(&file);
    let len = tokio::fs::metadata(&path).await.map_err(HttpError::from_io)?.len();
    if len <= WHOLE_READ_MAX {
        let _permit = READS.acquire().await.map_err(|_| HttpError::Internal)?;
        let data = Bytes::from(tokio::fs::read(&path).await.map_err(HttpError::from_io)?);
        let check = data.clone();
        let ok = tokio::task::spawn_blocking(move || Hash::of(&check) == hash)
            .await
            .map_err(|_| HttpError::Internal)?;
        if !ok {
            return Err(refuse(&state, &view, &hash));
        }
        cache.put(hash, ext, data.clone());
        return respond(&headers, Source::Memory(data), ctype, Caching::Immutable, Some(&etag)).await;
    }
    // Large segments: hash in a streaming pass, then stream; memory stays at one buffer.
    let p = path.clone();
    let ok = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(p)?)?;
        Ok(Hash(*h.finalize().as_bytes()) == hash)
    })
    .await
    .map_err(|_| HttpError::Internal)?
    .map_err(HttpError::from_io)?;
    if !ok {
        return Err(refuse(&state, &view, &hash));
    }
    respond(
        &headers,
        Source::File { path: &path, len },
        ctype,
        Caching::Immutable,
        Some(&etag),
    )
    .await
}

fn refuse(state: &AppState, view: &StreamView, hash: &Hash) -> HttpError {
    state.catalog.metrics().verification_failure(FailureSource::Disk);
    tracing::error!(stream = %view.id, %hash, "segment on disk does not match its hash: not served");
    HttpError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_strict() {
        let h = "a".repeat(64);
        assert!(parse_segment_name(&format!("{h}.m4s")).is_ok());
        assert!(parse_segment_name(&format!("{h}.ts")).is_ok());
        assert!(parse_segment_name(&format!("{h}.mp4")).is_ok());
        for bad in [
            format!("{}.m4s", "A".repeat(64)),
            format!("{}.m4s", "a".repeat(63)),
            format!("{h}.exe"),
            format!("{h}.m4s.m4s"),
            h.clone(),
            "..%2f..%2fkeys%2fstream.key".to_string(),
            format!("{}.m4s", "g".repeat(64)),
        ] {
            assert!(parse_segment_name(&bad).is_err(), "{bad}");
        }
    }
}
