//! The MoQ server (QUIC/WebTransport on UDP, plus the WebSocket fallback on TCP) that serves
//! the node's origin to subscribers, and the link that publishes the origin to a moq-relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::config::{MoqConfig, RelayConfig};
use crate::metrics::Metrics;

/// Sessions served at once; more are refused until one ends.
const MAX_SESSIONS: usize = 1024;

/// A bound MoQ server, not yet accepting.
pub struct Bound {
    listener: moq_tokio::Listener,
    pub quic: SocketAddr,
    pub websocket: Option<SocketAddr>,
    /// SHA-256 fingerprints of the (self-signed unless configured) certificate, hex.
    pub fingerprints: Vec<String>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("quic", &self.quic)
            .field("websocket", &self.websocket)
            .finish_non_exhaustive()
    }
}

/// Bind the QUIC listener on UDP `listen`, and the WebSocket fallback on TCP at the same
/// address (so a client falls back on the same host:port; with port 0 each gets its own).
pub async fn bind(cfg: &MoqConfig) -> anyhow::Result<Bound> {
    let mut listen = moq_tokio::listen::Config::default();
    listen.bind = Some(moq_tokio::listen::Bind::Addr(cfg.listen));
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            listen.tls.cert = vec![cert.clone()];
            listen.tls.key = vec![key.clone()];
        }
        (None, None) => listen.tls.generate = cfg.tls_generate.clone(),
        _ => anyhow::bail!("moq.tls_cert and moq.tls_key go together"),
    }
    let mut server_cfg = moq_tokio::server::Config::default();
    server_cfg.listen = listen;
    if cfg.websocket {
        let ws = moq_tokio::websocket::Listener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding the MoQ WebSocket fallback on tcp {}", cfg.listen))?;
        server_cfg.websocket = Some(ws);
    }
    let server = server_cfg
        .init()
        .with_context(|| format!("binding MoQ (QUIC) on udp {}", cfg.listen))?;
    let listener = server.listen().await?;
    Ok(Bound {
        quic: listener.local_addr()?,
        websocket: listener.websocket_local_addr(),
        fingerprints: listener.certificates().fingerprints(),
        listener,
    })
}

/// Accept sessions until `stop`, serving `origin` (read-only: nothing is taken from them).
pub async fn serve(
    mut bound: Bound,
    origin: moq_net::origin::Consumer,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    let mut next_id = 0u64;
    tokio::pin!(stop);
    loop {
        let request = tokio::select! {
            _ = &mut stop => break,
            r = bound.listener.accept() => match r {
                Some(r) => r,
                None => anyhow::bail!("MoQ listener stopped"),
            },
        };
        next_id += 1;
        let remote = request.remote_addr();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(?remote, "moq session refused: {MAX_SESSIONS} sessions already");
            tokio::spawn(async move {
                let _ = request.reject(moq_tokio::server::Reject::App(503)).await;
            });
            continue;
        };
        let origin = origin.clone();
        let metrics = metrics.clone();
        let span = tracing::info_span!("moq_session", id = next_id, ?remote, transport = %request.transport());
        tokio::spawn(
            async move {
                let _permit = permit;
                let session = match request.with_publisher(origin).ok().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "moq handshake failed");
                        return;
                    }
                };
                metrics.moq_session(1);
                tracing::debug!("moq session open");
                let err = session.closed().await;
                metrics.moq_session(-1);
                tracing::debug!(error = %err, "moq session closed");
            }
            .instrument(span),
        );
    }
    bound.listener.close().await;
    Ok(())
}

/// The dial side, shared by the relay link and the subscribers.
pub fn client_config(tls_insecure: bool, fingerprints: &[String]) -> moq_tokio::connect::Config {
    let mut c = moq_tokio::connect::Config::default();
    if tls_insecure {
        c.tls.insecure = Some(true);
    }
    c.tls.fingerprint = fingerprints.to_vec();
    c.timeout = Duration::from_secs(10);
    c.backoff.initial = Duration::from_millis(200);
    c.backoff.max = Duration::from_secs(5);
    // Never give up: a relay that is away for long comes back to a node still trying.
    c.backoff.timeout = Duration::ZERO;
    c
}

/// `url` with the token as the `jwt` query parameter, the way moq-relay takes it.
pub fn with_jwt(url: &str, jwt: Option<&str>) -> anyhow::Result<url::Url> {
    let mut url = url::Url::parse(url).with_context(|| format!("MoQ URL {url:?}"))?;
    if let Some(jwt) = jwt {
        url.query_pairs_mut().append_pair("jwt", jwt);
    }
    Ok(url)
}

/// Publish `origin` to the relay until `stop`, redialing with backoff whenever it goes away.
pub async fn relay(
    cfg: RelayConfig,
    origin: moq_net::origin::Consumer,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let url = with_jwt(&cfg.url, cfg.jwt.as_deref())?;
    let shown = moq_tokio::RedactedUrl::new(&url).to_string();
    let client = client_config(cfg.tls_insecure, &cfg.tls_fingerprint)
        .init(moq_tokio::quic::Config::default())
        .context("MoQ relay client")?;
    tokio::pin!(stop);
    let mut pause = Duration::from_millis(200);
    loop {
        let mut conn = client.clone().with_publisher(origin.clone()).connect(url.clone());
        loop {
            tokio::select! {
                _ = &mut stop => {
                    metrics.moq_relay_connected(false);
                    let _ = conn.close().await;
                    return Ok(());
                }
                status = conn.status() => match status {
                    Ok(moq_tokio::Status::Connected) => {
                        pause = Duration::from_millis(200);
                        metrics.moq_relay_connected(true);
                        tracing::info!(relay = %shown, session = conn.epoch(), "publishing to moq relay");
                    }
                    Ok(moq_tokio::Status::Disconnected) => {
                        metrics.moq_relay_connected(false);
                        tracing::warn!(relay = %shown, "moq relay connection lost; redialing with backoff");
                    }
                    Ok(other) => tracing::info!(relay = %shown, status = ?other, "moq relay"),
                    Err(e) => {
                        metrics.moq_relay_connected(false);
                        tracing::warn!(relay = %shown, error = %e, "moq relay link stopped; starting over");
                        break;
                    }
                },
            }
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
