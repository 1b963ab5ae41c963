//! The accept loop: one task per connection, bounded by [`IngestConfig::max_connections`],
//! with a per-stream registry so a live stream key cannot be hijacked and a reconnect
//! continues the stream's timeline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::clock::Timeline;
use crate::connection;
use crate::error::{Error, Result};
use crate::{IngestConfig, IngestEvent};

/// How long connections get to flush their last segment after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct StreamSlot {
    live: Option<u64>,
    timeline: Timeline,
    /// Timelines of the ABR ladder's rungs, by rung name.
    rungs: HashMap<String, Timeline>,
}

/// State shared by all connections of one [`serve`] call.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: IngestConfig,
    pub events: mpsc::Sender<IngestEvent>,
    keys: HashMap<String, String>,
    streams: Mutex<HashMap<String, StreamSlot>>,
    next_session: AtomicU64,
}

/// Why a publish claim was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    UnknownKey,
    AlreadyLive,
}

/// A live publish on a stream; dropping it frees the stream for the next publisher.
#[derive(Debug)]
pub(crate) struct Claim {
    shared: Arc<Shared>,
    pub stream: String,
    pub session: u64,
    pub timeline: Timeline,
    pub rungs: HashMap<String, Timeline>,
}

impl Claim {
    /// Records where the stream's timeline stands, for the next publisher.
    pub(crate) fn set_timeline(&mut self, timeline: Timeline) {
        self.timeline = timeline;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut streams = self.shared.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = streams.get_mut(&self.stream) {
            if slot.live == Some(self.session) {
                slot.live = None;
            }
            slot.timeline = self.timeline;
            slot.rungs = std::mem::take(&mut self.rungs);
        }
    }
}

impl Shared {
    /// Checks `cfg` and builds the state its connections share.
    pub(crate) fn new(cfg: IngestConfig, events: mpsc::Sender<IngestEvent>) -> Result<Self> {
        let keys = validate(&cfg)?;
        Ok(Self {
            cfg,
            events,
            keys,
            streams: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(0),
        })
    }

    /// Claims the stream `key` publishes to.
    pub(crate) fn claim(self: &Arc<Self>, key: &str) -> Result<Claim, ClaimError> {
        let stream = self.keys.get(key).ok_or(ClaimError::UnknownKey)?;
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let slot = streams.entry(stream.clone()).or_default();
        if slot.live.is_some() {
            return Err(ClaimError::AlreadyLive);
        }
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        slot.live = Some(session);
        Ok(Claim {
            shared: Arc::clone(self),
            stream: stream.clone(),
            session,
            timeline: slot.timeline,
            rungs: slot.rungs.clone(),
        })
    }
}

fn validate(cfg: &IngestConfig) -> Result<HashMap<String, String>> {
    if cfg.app.is_empty() {
        return Err(Error::Config("app must not be empty".into()));
    }
    if cfg.target_duration < Duration::from_millis(100) {
        return Err(Error::Config("target_duration must be at least 100 ms".into()));
    }
    if cfg.max_connections == 0 || cfg.max_message_size < 4096 {
        return Err(Error::Config(
            "max_connections must be > 0 and max_message_size >= 4096".into(),
        ));
    }
    #[cfg(not(unix))]
    if !cfg.ladder.is_empty() {
        return Err(Error::Config("the ABR ladder needs a Unix system".into()));
    }
    let mut keys = HashMap::new();
    for k in &cfg.keys {
        if k.key.is_empty() || k.stream.is_empty() {
            return Err(Error::Config("stream keys and names must not be empty".into()));
        }
        if keys.insert(k.key.clone(), k.stream.clone()).is_some() {
            return Err(Error::Config(format!("duplicate key for stream {}", k.stream)));
        }
    }
    Ok(keys)
}

/// Accepts RTMP publishers on `listener` until `shutdown` completes, sending
/// [`IngestEvent`]s to `events`. On shutdown every live publish emits its partial segment
/// and an [`IngestEvent::Unpublished`] before this returns (bounded by a 10 s grace period).
///
/// Errors: only an invalid [`IngestConfig`], or, with an ABR ladder configured, an ffmpeg
/// that is missing or lacks what the ladder needs ([`Error::Ffmpeg`]). Per-connection
/// failures are logged and cost only that connection.
pub async fn serve(
    listener: TcpListener,
    cfg: IngestConfig,
    events: mpsc::Sender<IngestEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let shared = Arc::new(Shared::new(cfg, events)?);
    crate::ladder::check_ladder(&shared.cfg.ladder, &shared.cfg.ffmpeg).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_conn = 0u64;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, app = %shared.cfg.app, "rtmp ingest listening");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                        warn!(%peer, "connection limit reached, closing");
                        continue;
                    };
                    next_conn += 1;
                    let span = info_span!("rtmp", conn = next_conn, %peer);
                    let shared = Arc::clone(&shared);
                    let stop = stop_rx.clone();
                    tasks.spawn(
                        async move {
                            let _permit = permit;
                            match connection::run(shared, socket, stop).await {
                                Ok(()) => debug!("connection closed"),
                                Err(e) => info!(error = %e, "connection closed"),
                            }
                        }
                        .instrument(span),
                    );
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(joined),
        }
    }
    info!("rtmp ingest shutting down");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        warn!("connections did not finish within the grace period, aborting them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

fn log_join(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        error!(error = %e, "connection task panicked");
    }
}
