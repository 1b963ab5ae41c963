//! The web client (embedded at build time), `/api/streams`, `/healthz` and `/metrics`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use manifest_signer::StreamId;
use serde_json::{Value, json};

use super::body::{Caching, Source, respond};
use super::{AppState, HttpError};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

fn find(path: &str) -> Option<&'static [u8]> {
    embedded::ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// The encodings the web client's build precompresses (`f.br`, `f.gz`), best first.
const ENCODINGS: [(&str, &str); 2] = [("br", "br"), ("gzip", "gz")];

/// `path`'s bytes in the best encoding the request accepts that the build made, with its
/// `Content-Encoding` (None: the file as it is).
fn find_encoded(req: &HeaderMap, path: &str) -> Option<(&'static [u8], Option<&'static str>)> {
    let plain = find(path)?;
    let accept = req
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    for (coding, ext) in ENCODINGS {
        if accepts(&accept, coding)
            && let Some(bytes) = find(&format!("{path}.{ext}"))
        {
            return Some((bytes, Some(coding)));
        }
    }
    Some((plain, None))
}

/// Whether an `Accept-Encoding` value accepts `coding` (RFC 9110 §12.5.3: listed, or `*`, with
/// a q-value above 0).
fn accepts(accept: &str, coding: &str) -> bool {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// Serves an embedded file, compressed when the client accepts it.
async fn embedded_file(
    headers: &HeaderMap,
    name: &str,
    bytes: &'static [u8],
    encoding: Option<&'static str>,
) -> Result<Response, HttpError> {
    let etag = format!("\"{}\"", &blake3::hash(bytes).to_hex()[..32]);
    let body = Source::Memory(Bytes::from_static(bytes));
    let mut r = respond(headers, body, content_type(name), Caching::NoStore, Some(&etag)).await?;
    let h = r.headers_mut();
    // Caches must key on the request's Accept-Encoding: the same URL has several bodies.
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(coding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    Ok(r)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn page(headers: &HeaderMap, name: &str) -> Result<Response, HttpError> {
    let Some((bytes, encoding)) = find_encoded(headers, name) else {
        return Ok((StatusCode::SERVICE_UNAVAILABLE, Html(NOT_BUILT)).into_response());
    };
    embedded_file(headers, name, bytes, encoding).await
}

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>hlswarm</title>\
<h1>hlswarm</h1><p>This binary was built without the web client. Build it with \
<code>(cd web-client &amp;&amp; npm ci &amp;&amp; npm run build)</code> and rebuild hlswarm \
(<code>scripts/run.sh</code> does both).</p><p>Streams still play in any HLS player at \
<code>/streams/&lt;stream_id&gt;/master.m3u8</code>; <a href=\"/api/streams\">/api/streams</a> lists them.</p>";

pub async fn dashboard(headers: HeaderMap) -> Result<Response, HttpError> {
    page(&headers, "index.html").await
}

pub async fn watch(Path(id): Path<String>, headers: HeaderMap) -> Result<Response, HttpError> {
    id.parse::<StreamId>()
        .map_err(|_| HttpError::BadRequest("malformed stream id\n"))?;
    page(&headers, "watch.html").await
}

pub async fn selftest(headers: HeaderMap) -> Result<Response, HttpError> {
    page(&headers, "selftest.html").await
}

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, HttpError> {
    if file.starts_with('.') || file.contains('/') {
        return Err(HttpError::NotFound);
    }
    let name = format!("assets/{file}");
    let (bytes, encoding) = find_encoded(&headers, &name).ok_or(HttpError::NotFound)?;
    let mut r = embedded_file(&headers, &name, bytes, encoding).await?;
    // Asset names are not content-hashed, so they are revalidated (cheap: ETag -> 304).
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

pub async fn api_streams(State(state): State<AppState>) -> Response {
    let catalog = &state.catalog;
    let viewers = catalog.viewers();
    let viewers_of = |id: &StreamId| viewers.iter().find(|(v, _)| v == id).map_or(0, |(_, n)| *n);
    let streams: Vec<Value> = catalog
        .list()
        .iter()
        .map(|v| {
            let m = &v.manifest.body;
            json!({
                "id": v.id.to_string(),
                "title": v.title(),
                "seq": m.seq,
                "ended": v.ended(),
                "updated_ms": m.time_ms,
                "viewers": viewers_of(&v.id),
                "bytes_out": catalog.bytes_out(&v.id),
                "watch": format!("/watch/{}", v.id),
                "master": format!("/streams/{}/master.m3u8", v.id),
                "log_size": m.log.size,
                "renditions": m.renditions.iter().map(|r| json!({
                    "name": r.name,
                    "codecs": r.codecs,
                    "resolution": r.resolution,
                    "bandwidth": r.bandwidth.unwrap_or_else(|| manifest_signer::playlist::peak_bandwidth(r)),
                    "container": match r.container {
                        manifest_signer::Container::Fmp4 => "fmp4",
                        manifest_signer::Container::Ts => "ts",
                    },
                    "segments": r.segments.len(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let total_viewers: usize = viewers.iter().map(|(_, n)| n).sum();
    let body = json!({
        "node": {
            "version": env!("CARGO_PKG_VERSION"),
            "rtmp_url": state.node.rtmp_url,
            "publisher_advice": catalog.publisher_advice(),
            "stream_key_hint": state.node.rtmp_url.as_ref().map(|_|
                "printed when the node starts; kept in keys/publish.secret in its data directory"),
            "viewers": total_viewers,
            // Browser peers in this node's tracker swarms.
            "peers": state.tracker.as_ref().map_or(0, |t| t.counts().1),
            "swarm_peers": catalog.metrics().swarm.peers.load(std::sync::atomic::Ordering::Relaxed),
            "p2p": state.node.p2p,
            "bytes_out": {
                "http": catalog.metrics().http_bytes_total(),
                "p2p": catalog.metrics().swarm.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
                // Into MoQ tracks: a relay or the QUIC stack fans them out per subscriber.
                "moq_published": catalog.metrics().moq_bytes_published(),
            },
            "uptime_s": state.started.elapsed().as_secs(),
        },
        "streams": streams,
    });
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    let mut r = Json(json!({"status": "ok", "streams": state.catalog.list().len()})).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let catalog = &state.catalog;
    let viewers: Vec<(String, usize)> = catalog
        .viewers()
        .into_iter()
        .map(|(id, n)| (id.to_string(), n))
        .collect();
    let mut text = catalog
        .metrics()
        .render(&viewers, catalog.cache().bytes(), catalog.list().len());
    if let Some(t) = &state.tracker {
        t.render_metrics(&mut text);
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_encoding_is_read_with_q_values_and_wildcards() {
        assert!(accepts("gzip, deflate, br, zstd", "br"));
        assert!(accepts("gzip, deflate, br, zstd", "gzip"));
        assert!(!accepts("gzip;q=1.0, br;q=0", "br"));
        assert!(accepts("GZIP;Q=0.5", "gzip"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*;q=0", "gzip"));
        assert!(!accepts("br;q=0, *", "br"), "an explicit refusal beats the wildcard");
        assert!(!accepts("identity", "gzip"));
        assert!(!accepts("", "br"));
        assert!(!accepts("xbr", "br"));
    }
}
