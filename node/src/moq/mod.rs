//! The MoQ bridge (PROTOCOL §15.2): every stream the node carries as a MoQ broadcast, served
//! directly (QUIC/WebTransport, WebSocket fallback) and pushed to a moq-relay; and the way
//! back in: follow a stream over MoQ, verify every object against the signed manifests, and
//! print it (`hlswarm moq-watch`) or hand it to a replica that serves it as HLS (the gateway).
//!
//! - `mapping`: broadcast path, track names, group/frame layout, catalog JSON.
//! - `publish`: catalog -> broadcast producers.
//! - `serve`: the server and the relay link.
//! - `follow`: the subscriber's verification state (no I/O).
//! - `subscribe`: network side of following a stream.
//! - `watch`, `gateway`: the two consumers.

pub mod config;
pub mod follow;
pub mod gateway;
pub mod mapping;
mod publish;
pub mod serve;
pub mod subscribe;
pub mod watch;

use std::sync::Arc;

pub use config::{MoqConfig, RelayConfig};

use crate::catalog::Catalog;

/// The running MoQ side of `hlswarm run`: publisher, server and relay link.
#[derive(Debug)]
pub struct Running {
    pub quic: Option<std::net::SocketAddr>,
    pub websocket: Option<std::net::SocketAddr>,
    pub fingerprints: Vec<String>,
}

/// Install the rustls crypto provider moq-tokio was built with, once per process (a second
/// call finds it installed, which is fine).
pub fn init_crypto() {
    let _ = moq_tokio::crypto::install_default();
}

/// Bind (so the caller can print what works), then spawn the tasks. The returned task ends when
/// `stop` fires; an error from any part ends it early with that error.
pub async fn start(
    cfg: &MoqConfig,
    catalog: Arc<Catalog>,
    metrics: Arc<crate::metrics::Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Running, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    init_crypto();
    let bound = match serve::bind(cfg).await {
        Ok(b) => b,
        // Another node on this machine has the port (a seeder beside an origin): a free port
        // serves as well, and the banner prints the one taken.
        Err(e) if cfg.listen.port() != 0 => {
            let mut any = cfg.clone();
            any.listen.set_port(0);
            tracing::warn!(listen = %cfg.listen, error = %e, "MoQ port taken; listening on a free port");
            serve::bind(&any).await?
        }
        Err(e) => return Err(e),
    };
    let running = Running {
        quic: Some(bound.quic),
        websocket: bound.websocket,
        fingerprints: bound.fingerprints.clone(),
    };
    let origin = moq_tokio::origin::spawn();
    let publisher = publish::Publisher::new(catalog, origin.clone());
    let relay = cfg.relay.clone();
    let task = tokio::spawn(async move {
        let wait = |rx: tokio::sync::watch::Receiver<bool>| async move {
            let mut rx = rx;
            let _ = rx.wait_for(|v| *v).await;
        };
        let relay_task = async {
            match relay {
                Some(r) => serve::relay(r, origin.consume(), metrics.clone(), wait(stop.clone())).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(
            publisher.run(wait(stop.clone())),
            serve::serve(bound, origin.consume(), metrics.clone(), wait(stop.clone())),
            relay_task,
        )
        .map(|_| ())
    });
    Ok((running, task))
}
