//! MoQ -> verified HLS: follow a stream over MoQ and hand what verifies to a replica, which
//! checks it again, stores it and serves it over HTTP (and the swarm). Used by `hlswarm seed`
//! with a MoQ source.

use std::sync::Arc;

use bytes::Bytes;
use manifest_signer::{Hash, StreamId};
use tokio::sync::mpsc;

use super::subscribe::{Event, Source, follow};
use crate::metrics::Metrics;

/// Where verified objects go: the replica (`crate::replica::Replica` implements this).
pub trait Sink: Send + Sync + 'static {
    /// Offer MANIFEST_ROOT wire bytes; `Err` is a refusal, with its reason.
    fn offer_manifest(&self, id: &StreamId, wire: &[u8]) -> Result<(), String>;
    fn offer_announce(&self, id: &StreamId, wire: &[u8]) -> Result<(), String>;
    /// Bytes of a segment or init segment named by `hash`.
    fn put_blob(&self, id: &StreamId, hash: Hash, bytes: Bytes) -> Result<(), String>;
}

impl Sink for crate::replica::Replica {
    fn offer_manifest(&self, id: &StreamId, wire: &[u8]) -> Result<(), String> {
        self.offer_manifest_wire(id, wire)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn offer_announce(&self, id: &StreamId, wire: &[u8]) -> Result<(), String> {
        self.offer_announce_wire(id, wire).map_err(|e| e.to_string())
    }

    fn put_blob(&self, id: &StreamId, hash: Hash, bytes: Bytes) -> Result<(), String> {
        crate::replica::Replica::put_blob(self, id, hash, bytes).map_err(|e| e.to_string())
    }
}

/// Parse `seed --moq-source` URLs; each stream is also followed (so the swarm carries it and
/// the banner names it), with no HTTP origin.
pub fn sources(
    urls: &[String],
    insecure: bool,
    follows: &mut Vec<crate::swarm::Follow>,
) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for u in urls {
        let mut s = Source::parse(u, None, None)?;
        s.tls_insecure = insecure;
        if !follows.iter().any(|f| f.stream == s.stream) {
            follows.push(crate::swarm::Follow {
                stream: s.stream,
                http: Vec::new(),
                peers: Vec::new(),
            });
        }
        out.push(s);
    }
    Ok(out)
}

/// Run the gateway in its own task until `stop`; if it fails it is logged and started again
/// after a pause (the source may come back).
pub fn spawn<S: Sink>(
    source: Source,
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let wait = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
            }
        };
        let stopper = tokio::spawn(async move {
            stop.await;
            let _ = stop_tx.send(true);
        });
        loop {
            let res = run(source.clone(), sink.clone(), metrics.clone(), wait()).await;
            if let Err(e) = &res {
                tracing::warn!(stream = %source.stream, error = %format!("{e:#}"), "moq gateway stopped; restarting");
            }
            tokio::select! {
                _ = wait() => break,
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
        }
        stopper.abort();
    });
}

/// Run the gateway until `stop`.
pub async fn run<S: Sink>(
    source: Source,
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let id = source.stream;
    let (tx, mut rx) = mpsc::channel(64);
    let mut task = tokio::spawn(follow(source, tx, metrics.clone(), stop));
    loop {
        let ev = tokio::select! {
            res = &mut task => return res?,
            ev = rx.recv() => ev,
        };
        let Some(ev) = ev else { break };
        let res = match ev {
            Event::Manifest { wire, manifest } => {
                tracing::debug!(stream = %id, seq = manifest.body.seq, "moq gateway: manifest");
                sink.offer_manifest(&id, &wire)
            }
            Event::Announce { wire } => sink.offer_announce(&id, &wire),
            Event::Segment(v) => {
                let init = match v.init {
                    Some((h, b)) => sink.put_blob(&id, h, b),
                    None => Ok(()),
                };
                init.and_then(|()| sink.put_blob(&id, v.hash, v.bytes))
            }
            Event::Connected { .. } | Event::Broadcast | Event::Refused { .. } => Ok(()),
        };
        if let Err(e) = res {
            tracing::info!(stream = %id, error = %e, "moq gateway: the replica did not take an object");
        }
    }
    task.await?
}
