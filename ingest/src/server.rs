//! The accept loops (RTMP and RTMPS): one task per connection, admitted by the
//! [`Admission`] table, and a per-stream registry through which a publish with the stream key
//! takes a live stream over and a reconnect continues the stream's timeline.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::admission::{Admission, ConnId, Eviction, Limits, PublishRefused};
use crate::clock::Timeline;
use crate::connection;
use crate::error::{Error, Result};
use crate::{IngestConfig, IngestEvent, Refusal};

/// How long connections get to flush their last segment after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a takeover waits for the previous publisher to hand its timeline back.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// The sockets [`serve_listeners`] accepts publishers on.
#[derive(Default)]
pub struct Listeners {
    /// Plain RTMP.
    pub rtmp: Option<TcpListener>,
    /// RTMPS: RTMP inside TLS, with the acceptor holding the certificate.
    pub rtmps: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("rtmp", &self.rtmp)
            .field("rtmps", &self.rtmps.as_ref().map(|(l, _)| l))
            .finish()
    }
}

/// The publish now live on a stream.
#[derive(Debug)]
struct Live {
    session: u64,
    /// Tells that publish to stop; taken when sent.
    takeover: Option<oneshot::Sender<()>>,
    /// Closed when that publish's [`Claim`] is dropped (its timeline written back).
    released: watch::Receiver<()>,
}

#[derive(Debug, Default)]
struct StreamSlot {
    live: Option<Live>,
    /// The session of the newest claim attempt: an older waiting one gives way to it.
    wanted: u64,
    timeline: Timeline,
    /// Timelines of the ABR ladder's rungs, by rung name.
    rungs: HashMap<String, Timeline>,
}

/// The admission table and how to close each connection it evicts.
#[derive(Debug)]
struct Gate {
    table: Admission,
    kick: HashMap<ConnId, oneshot::Sender<Eviction>>,
}

/// State shared by all connections of one [`serve`] call.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: IngestConfig,
    pub events: mpsc::Sender<IngestEvent>,
    keys: HashMap<String, String>,
    streams: Mutex<HashMap<String, StreamSlot>>,
    gate: Mutex<Gate>,
    next_session: AtomicU64,
}

/// Why a publish claim was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    UnknownKey,
    /// A newer publish with the same key came while this one waited for the old one.
    Superseded,
}

/// A live publish on a stream; dropping it frees the stream for the next publisher.
#[derive(Debug)]
pub(crate) struct Claim {
    shared: Arc<Shared>,
    pub stream: String,
    pub session: u64,
    pub timeline: Timeline,
    pub rungs: HashMap<String, Timeline>,
    /// Resolves when another connection takes the stream over.
    pub taken_over: oneshot::Receiver<()>,
    /// Dropped after `drop` has written the timeline back: wakes a waiting takeover.
    _released: watch::Sender<()>,
}

impl Claim {
    /// Records where the stream's timeline stands, for the next publisher.
    pub(crate) fn set_timeline(&mut self, timeline: Timeline) {
        self.timeline = timeline;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut streams = lock(&self.shared.streams);
        if let Some(slot) = streams.get_mut(&self.stream)
            && slot.live.as_ref().is_some_and(|l| l.session == self.session)
        {
            slot.live = None;
            slot.timeline = self.timeline;
            slot.rungs = std::mem::take(&mut self.rungs);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Checks `cfg` and builds the state its connections share.
    pub(crate) fn new(cfg: IngestConfig, events: mpsc::Sender<IngestEvent>) -> Result<Self> {
        let keys = validate(&cfg)?;
        let limits = Limits {
            pending: cfg.max_connections,
            per_address: cfg.max_connections_per_address,
            publishing: cfg.max_publishers,
        };
        Ok(Self {
            cfg,
            events,
            keys,
            streams: Mutex::new(HashMap::new()),
            gate: Mutex::new(Gate {
                table: Admission::new(limits),
                kick: HashMap::new(),
            }),
            next_session: AtomicU64::new(0),
        })
    }

    pub(crate) fn refuse(&self, reason: Refusal) {
        self.cfg.stats.refuse(reason);
    }

    /// True when `key` is a configured stream key.
    pub(crate) fn knows_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Admits a connection from `peer`, closing the connection it evicts (if any).
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> (Ticket, oneshot::Receiver<Eviction>) {
        let mut gate = lock(&self.gate);
        let admitted = gate.table.admit(peer.ip());
        if let Some((victim, why)) = admitted.evict {
            self.refuse(match why {
                Eviction::PerAddress => Refusal::PerAddress,
                Eviction::PoolFull => Refusal::Evicted,
            });
            if let Some(kick) = gate.kick.remove(&victim) {
                let _ = kick.send(why);
            }
        }
        let (tx, rx) = oneshot::channel();
        gate.kick.insert(admitted.id, tx);
        self.publish_counts(&gate);
        let ticket = Ticket {
            shared: Arc::clone(self),
            id: admitted.id,
        };
        (ticket, rx)
    }

    /// Moves connection `id` to the publishing pool, where it can no longer be evicted.
    pub(crate) fn start_publishing(&self, id: ConnId) -> Result<(), PublishRefused> {
        let mut gate = lock(&self.gate);
        gate.table.publishing(id)?;
        gate.kick.remove(&id);
        self.publish_counts(&gate);
        Ok(())
    }

    fn publish_counts(&self, gate: &Gate) {
        let (pending, publishing) = gate.table.counts();
        self.cfg.stats.pending.store(pending as u64, Ordering::Relaxed);
        self.cfg.stats.publishing.store(publishing as u64, Ordering::Relaxed);
    }

    /// A stream's state before its first publish: its timeline resumes where a previous
    /// process left it ([`IngestConfig::resume_ms`]).
    fn new_slot(&self, stream: &str) -> StreamSlot {
        StreamSlot {
            timeline: Timeline {
                next_sequence: 0,
                next_start_ms: self.cfg.resume_ms.get(stream).copied().unwrap_or(0),
            },
            ..StreamSlot::default()
        }
    }

    /// Claims the stream `key` publishes to. A live publish on it is told to stop, and this
    /// waits (at most [`TAKEOVER_WAIT`]) until it has handed its timeline back.
    pub(crate) async fn claim(self: &Arc<Self>, key: &str) -> Result<Claim, ClaimError> {
        let stream = self.keys.get(key).ok_or(ClaimError::UnknownKey)?.clone();
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = {
            let mut streams = lock(&self.streams);
            let slot = streams.entry(stream.clone()).or_insert_with(|| self.new_slot(&stream));
            slot.wanted = session;
            slot.live.as_mut().map(|live| {
                let told = live.takeover.take().is_some_and(|tx| tx.send(()).is_ok());
                (live.session, live.released.clone(), told)
            })
        };
        if let Some((old, mut released, told)) = previous {
            if told {
                self.cfg.stats.takeovers.fetch_add(1, Ordering::Relaxed);
            }
            info!(%stream, old_session = old, session, "stream key presented while live: taking over, closing the previous publisher");
            let handed_back =
                tokio::time::timeout(TAKEOVER_WAIT, async { while released.changed().await.is_ok() {} }).await;
            if handed_back.is_err() {
                warn!(
                    old_session = old,
                    "previous publisher did not stop within 5 s; taking over anyway"
                );
            }
        }
        let mut streams = lock(&self.streams);
        let slot = streams.entry(stream.clone()).or_insert_with(|| self.new_slot(&stream));
        if slot.wanted != session {
            return Err(ClaimError::Superseded);
        }
        let (takeover, taken_over) = oneshot::channel();
        let (released_tx, released) = watch::channel(());
        slot.live = Some(Live {
            session,
            takeover: Some(takeover),
            released,
        });
        Ok(Claim {
            shared: Arc::clone(self),
            stream,
            session,
            timeline: slot.timeline,
            rungs: slot.rungs.clone(),
            taken_over,
            _released: released_tx,
        })
    }
}

/// A connection's place in the admission table; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    pub id: ConnId,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut gate = lock(&self.shared.gate);
        gate.table.closed(self.id);
        gate.kick.remove(&self.id);
        self.shared.publish_counts(&gate);
    }
}

fn validate(cfg: &IngestConfig) -> Result<HashMap<String, String>> {
    if cfg.app.is_empty() {
        return Err(Error::Config("app must not be empty".into()));
    }
    if cfg.target_duration < Duration::from_millis(100) {
        return Err(Error::Config("target_duration must be at least 100 ms".into()));
    }
    if cfg.max_connections == 0
        || cfg.max_connections_per_address == 0
        || cfg.max_publishers == 0
        || cfg.max_message_size < 4096
    {
        return Err(Error::Config(
            "max_connections, max_connections_per_address and max_publishers must be > 0 and max_message_size >= 4096"
                .into(),
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

/// Accepts RTMP publishers on `listener` until `shutdown` completes; see [`serve_listeners`].
pub async fn serve(
    listener: TcpListener,
    cfg: IngestConfig,
    events: mpsc::Sender<IngestEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listeners = Listeners {
        rtmp: Some(listener),
        rtmps: None,
    };
    serve_listeners(listeners, cfg, events, shutdown).await
}

/// Accepts RTMP and RTMPS publishers until `shutdown` completes, sending [`IngestEvent`]s to
/// `events`. Both listeners share one admission table and one set of streams. On shutdown
/// every live publish emits its partial segment and an [`IngestEvent::Unpublished`] before
/// this returns (bounded by a 10 s grace period).
///
/// Errors: only an invalid [`IngestConfig`], or, with an ABR ladder configured, an ffmpeg
/// that is missing or lacks what the ladder needs ([`Error::Ffmpeg`]). Per-connection
/// failures are logged and cost only that connection.
pub async fn serve_listeners(
    listeners: Listeners,
    cfg: IngestConfig,
    events: mpsc::Sender<IngestEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let shared = Arc::new(Shared::new(cfg, events)?);
    crate::ladder::check_ladder(&shared.cfg.ladder, &shared.cfg.ffmpeg).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_conn = 0u64;
    let (plain, tls) = match listeners.rtmps {
        Some((l, a)) => (listeners.rtmp, Some((l, a))),
        None => (listeners.rtmp, None),
    };
    for (l, scheme) in [(plain.as_ref(), "rtmp"), (tls.as_ref().map(|t| &t.0), "rtmps")] {
        if let Some(addr) = l.and_then(|l| l.local_addr().ok()) {
            info!(%addr, app = %shared.cfg.app, scheme, "ingest listening");
        }
    }
    tokio::pin!(shutdown);
    loop {
        let (accepted, acceptor) = tokio::select! {
            () = &mut shutdown => break,
            a = accept(plain.as_ref()) => (a, None),
            a = accept(tls.as_ref().map(|t| &t.0)) => (a, tls.as_ref().map(|t| t.1.clone())),
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                log_join(joined);
                continue;
            }
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                next_conn += 1;
                let span = info_span!("rtmp", conn = next_conn, %peer, tls = acceptor.is_some());
                let (ticket, kicked) = span.in_scope(|| shared.admit(peer));
                let task = conn_task(Arc::clone(&shared), socket, acceptor, ticket, kicked, stop_rx.clone());
                tasks.spawn(task.instrument(span));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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

async fn accept(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// One connection: TLS first if it came in on RTMPS, then the RTMP session; closed at once
/// when the admission table evicts it (only ever before it publishes).
async fn conn_task(
    shared: Arc<Shared>,
    socket: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    ticket: Ticket,
    kicked: oneshot::Receiver<Eviction>,
    stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let id = ticket.id;
    let conn = async {
        match acceptor {
            None => connection::run(Arc::clone(&shared), socket, stop, started, id).await,
            Some(acceptor) => {
                let deadline = started + shared.cfg.handshake_timeout;
                match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
                    Err(_) => {
                        shared.refuse(Refusal::HandshakeTimeout);
                        Err(Error::Timeout("tls handshake"))
                    }
                    Ok(Err(e)) => {
                        shared.refuse(Refusal::Tls);
                        Err(Error::Io(e))
                    }
                    Ok(Ok(tls)) => connection::run(Arc::clone(&shared), tls, stop, started, id).await,
                }
            }
        }
    };
    tokio::select! {
        result = conn => match result {
            Ok(()) => debug!("connection closed"),
            Err(e) => info!(error = %e, "connection closed"),
        },
        Ok(why) = kicked => info!(
            reason = match why {
                Eviction::PerAddress => "too many connections from this address",
                Eviction::PoolFull => "too many connections that have not published",
            },
            "closed before publishing to make room for a newer connection"
        ),
    }
    drop(ticket);
}

fn log_join(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        error!(error = %e, "connection task panicked");
    }
}
