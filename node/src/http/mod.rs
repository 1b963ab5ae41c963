//! The HTTP origin (axum): playlists rendered from the latest verified MANIFEST_ROOT,
//! content-addressed segments, the signed objects as JSON, the web client, `/api/streams`,
//! `/healthz` and `/metrics`.
//!
//! ```text
//! GET /streams/<id>/master.m3u8 | <rendition>.m3u8   rendered from the verified manifest
//! GET /streams/<id>/manifest.json | announce.json    exact signed wire bytes
//! GET /streams/<id>/log.jsonl                        the Merkle log (archive proofs)
//! GET /streams/<id>/seg/<blake3>.m4s|ts|mp4          immutable, from memory or disk (parts too)
//! GET /streams/<id>/part/<rendition>/<seq>.<part>.m4s the LL-HLS preload hint's part, once signed
//! GET /  /watch/<id>  /selftest  /assets/<file>      the web client
//! GET /api/streams  /healthz  /metrics
//! GET /tracker (WebSocket)                           the WebTorrent tracker, when enabled
//! ```
//! Every response carries `Access-Control-Allow-Origin: *`. Errors carry a short fixed text;
//! details go to the log only.

mod body;
mod ll;
mod streams;
mod web;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::catalog::Catalog;
use crate::metrics::Route;

/// What the dashboard shows about this node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `rtmp://HOST:PORT/live` for OBS, when ingest runs.
    pub rtmp_url: Option<String>,
    /// The swarm's multiaddrs (with `/p2p/<peer id>`), when the swarm runs: a seeder given this
    /// node's watch URL dials them.
    pub p2p: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`[http] trusted_proxies`).
    pub trusted_proxies: Vec<IpAddr>,
}

/// Most `X-Forwarded-For` entries looked at.
const MAX_FORWARDED: usize = 32;

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
/// `X-Forwarded-For` entry (from the right) that is not a trusted proxy itself. Anything a
/// client could write further left is ignored.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let canon = |ip: IpAddr| ip.to_canonical();
    let peer_ip = canon(peer.ip());
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for e in entries.iter().rev().take(MAX_FORWARDED) {
        match e.trim().parse::<IpAddr>().map(canon) {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // A malformed hop: nothing left of it can be trusted.
            Err(_) => break,
        }
    }
    peer_ip
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub node: Arc<NodeInfo>,
    pub started: Instant,
    /// The embedded WebTorrent tracker at `/tracker`, when enabled.
    pub tracker: Option<tracker::Tracker>,
}

/// Errors a request can end in. The client sees only the status and a fixed short text.
#[derive(Debug)]
pub enum HttpError {
    NotFound,
    BadRequest(&'static str),
    Internal,
}

impl HttpError {
    fn from_io(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            HttpError::NotFound
        } else {
            tracing::warn!(error = %e, "I/O error serving a request");
            HttpError::Internal
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            HttpError::NotFound => (StatusCode::NOT_FOUND, "not found\n"),
            HttpError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            HttpError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        };
        let mut r = (status, text).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

pub fn router(state: AppState) -> Router {
    // Without the tracker, /tracker is not a route at all (404 from the fallback).
    let tracker = match state.tracker {
        Some(_) => Router::new().route("/tracker", get(tracker_ws)),
        None => Router::new(),
    };
    Router::new()
        .merge(tracker)
        .route("/streams/{id}/{file}", get(streams::file))
        .route("/streams/{id}/seg/{file}", get(streams::segment))
        .route("/streams/{id}/part/{rendition}/{file}", get(streams::part))
        .route("/api/streams", get(web::api_streams))
        .route("/healthz", get(web::healthz))
        .route("/metrics", get(web::metrics))
        .route("/", get(web::dashboard))
        .route("/watch/{id}", get(web::watch))
        .route("/selftest", get(web::selftest))
        .route("/assets/{file}", get(web::asset))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), account))
        .with_state(state)
}

async fn tracker_ws(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    match &state.tracker {
        Some(t) => crate::tracker::upgrade(t, ws, client_ip(peer, &headers, &state.node.trusted_proxies)),
        None => HttpError::NotFound.into_response(),
    }
}

async fn fallback() -> HttpError {
    HttpError::NotFound
}

/// CORS for every response, preflight answers, and per-route request and byte counters.
async fn account(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let route = route_of(&path);
    let head = req.method() == Method::HEAD;
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Range, If-None-Match, X-Hlswarm-Viewer"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let bytes = if head {
        0
    } else {
        h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    state
        .catalog
        .metrics()
        .http_response(route, resp.status().as_u16(), bytes);
    if bytes > 0
        && let Some(id) = stream_of(&path)
    {
        state.catalog.add_bytes_out(&id, bytes);
    }
    resp
}

fn stream_of(path: &str) -> Option<manifest_signer::StreamId> {
    crate::catalog::parse_shape(path.strip_prefix("/streams/")?.split('/').next()?)
}

fn route_of(path: &str) -> Route {
    if let Some(rest) = path.strip_prefix("/streams/") {
        let file = rest.rsplit('/').next().unwrap_or("");
        return if rest.contains("/seg/") {
            if file.ends_with(".mp4") {
                Route::Init
            } else {
                Route::Segment
            }
        } else if file.ends_with(".m3u8") {
            Route::Playlist
        } else if file == "manifest.json" {
            Route::Manifest
        } else if file == "announce.json" {
            Route::Announce
        } else if file == "log.jsonl" {
            Route::Log
        } else {
            Route::Other
        };
    }
    if path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
        Route::Api
    } else if path == "/" || path.starts_with("/watch/") || path.starts_with("/assets/") || path == "/selftest" {
        Route::Web
    } else {
        Route::Other
    }
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Playlists, manifests and tracker replies are small and latency-bound: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 40000);
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // No trusted proxy: the header is a client's word, ignored.
        assert_eq!(
            client_ip(at("203.0.113.9"), &xff("198.51.100.1"), &[]),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(at("127.0.0.1"), &xff("198.51.100.1"), &[]), ip("127.0.0.1"));
        // From the proxy: the rightmost entry the proxy appended.
        assert_eq!(
            client_ip(at("127.0.0.1"), &xff("198.51.100.1"), &[proxy]),
            ip("198.51.100.1")
        );
        // A client's own forged entries sit further left and are not reached.
        assert_eq!(
            client_ip(at("127.0.0.1"), &xff("10.0.0.1, 198.51.100.1"), &[proxy]),
            ip("198.51.100.1")
        );
        // Chained trusted proxies are skipped; IPv4-mapped IPv6 is the same address.
        let two = [proxy, ip("192.0.2.7")];
        assert_eq!(
            client_ip(at("::ffff:127.0.0.1"), &xff("198.51.100.1, 192.0.2.7"), &two),
            ip("198.51.100.1")
        );
        // Junk or a missing header: the proxy's own address.
        assert_eq!(client_ip(at("127.0.0.1"), &xff("not-an-ip"), &[proxy]), proxy);
        assert_eq!(client_ip(at("127.0.0.1"), &HeaderMap::new(), &[proxy]), proxy);
    }
}
