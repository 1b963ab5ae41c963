//! The supervisor: one task per session that runs ffmpeg, feeds its stdin, restarts it with
//! backoff while the source is live and drains it at the end.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::process::{Child, ChildStderr, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::rung::{ReaderEnd, RungReader};
use super::*;
use crate::clock::Timeline;
use crate::error::Result;
use crate::flv_stream;
use crate::ladder::{self, Rung};
use crate::server::Shared;

/// The supervisor's end of the queue; remembers the latest configs for restarts.
#[derive(Debug)]
pub(super) struct Input {
    pub(super) rx: mpsc::Receiver<Item>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) video_cfg: Option<Item>,
    pub(super) audio_cfg: Option<Item>,
}

impl Input {
    async fn recv(&mut self) -> Option<Item> {
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(item.body.len(), Ordering::Relaxed);
        if item.config {
            let slot = if item.kind == TAG_VIDEO {
                &mut self.video_cfg
            } else {
                &mut self.audio_cfg
            };
            *slot = Some(item.clone());
        }
        Some(item)
    }

    /// Discards input for `d`; `false` when the input ended meanwhile.
    async fn discard_for(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            match timeout_at(deadline, self.recv()).await {
                Err(_) => return true,
                Ok(None) => return false,
                Ok(Some(_)) => {}
            }
        }
    }

    /// FLV header, the configs and `key` (the keyframe a run starts at).
    fn start_bytes(&self, audio: bool, key: &Item) -> Result<BytesMut> {
        let mut out = BytesMut::from(&flv_stream::header(audio, true)[..]);
        let configs = [self.video_cfg.as_ref(), self.audio_cfg.as_ref().filter(|_| audio)];
        for c in configs.into_iter().flatten() {
            out.put_slice(&flv_stream::tag(c.kind, key.ts_ms, &c.body)?);
        }
        out.put_slice(&flv_stream::tag(key.kind, key.ts_ms, &key.body)?);
        Ok(out)
    }
}

/// How one ffmpeg run ended.
enum Run {
    /// The source ended; ffmpeg flushed (or was killed after [`EXIT_GRACE`]).
    InputEnded,
    /// ffmpeg failed while the source was live.
    Failed(String),
}

#[derive(Debug)]
pub(super) struct Supervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) stream: String,
    pub(super) session: u64,
    pub(super) rungs: Vec<Rung>,
    pub(super) audio: bool,
    /// Rung timestamp + offset = stream timeline (see [`FEED_ORIGIN_MS`]).
    pub(super) offset_ms: i64,
    pub(super) timelines: HashMap<String, Timeline>,
}

impl Supervisor {
    pub(super) async fn run(mut self, mut input: Input) -> HashMap<String, Timeline> {
        // A private directory: only this user can connect to the rung sockets.
        let dir = tempfile::Builder::new()
            .prefix("hlswarm-ladder-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir();
        let dir = match dir {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "ABR ladder: cannot create its socket directory; no rungs for this publish");
                return self.timelines;
            }
        };
        let mut listeners = Vec::with_capacity(self.rungs.len());
        for r in &self.rungs {
            match UnixListener::bind(ladder::socket_path(dir.path(), r)) {
                Ok(l) => listeners.push(Arc::new(l)),
                Err(e) => {
                    error!(error = %e, rung = %r.name, "ABR ladder: cannot listen for its rung; no rungs for this publish");
                    return self.timelines;
                }
            }
        }
        let names: Vec<&str> = self.rungs.iter().map(|r| r.name.as_str()).collect();
        info!(rungs = ?names, "ABR ladder starting");
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match self.run_ffmpeg(&mut input, dir.path(), &listeners).await {
                Run::InputEnded => break,
                Run::Failed(why) => {
                    self.shared.cfg.stats.ladder_failures.fetch_add(1, Ordering::Relaxed);
                    if started.elapsed() >= STABLE_RUN {
                        failures = 0;
                    }
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        error!(%why, failures, "ffmpeg for the ABR ladder keeps failing: no rungs for the rest of this publish (the source is unaffected)");
                        break;
                    }
                    let backoff = (Duration::from_secs(1) * (1 << (failures - 1))).min(MAX_BACKOFF);
                    warn!(%why, attempt = failures, backoff_s = backoff.as_secs(), "ffmpeg for the ABR ladder failed; restarting it (the source is unaffected)");
                    if !input.discard_for(backoff).await {
                        break;
                    }
                }
            }
        }
        info!("ABR ladder stopped");
        self.timelines
    }

    async fn run_ffmpeg(&mut self, input: &mut Input, dir: &Path, listeners: &[Arc<UnixListener>]) -> Run {
        let cfg = &self.shared.cfg;
        let spawned = Command::new(&cfg.ffmpeg)
            .args(ladder::ffmpeg_args(&self.rungs, self.audio, dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C meant for the node must not stop ffmpeg behind
            // the node's back; the node ends it by closing stdin (or kills it when dropped).
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Run::Failed(format!("cannot start {}: {e}", cfg.ffmpeg.display())),
        };
        debug!(pid = child.id(), "ffmpeg started");
        let stderr = child
            .stderr
            .take()
            .map(|e| tokio::spawn(stderr_tail(e).in_current_span()));
        let (exited_tx, exited_rx) = watch::channel(false);
        let mut readers = JoinSet::new();
        for (rung, listener) in self.rungs.iter().zip(listeners) {
            let reader = RungReader {
                shared: Arc::clone(&self.shared),
                stream: self.stream.clone(),
                session: self.session,
                name: rung.name.clone(),
                timeline: self.timelines.get(&rung.name).copied().unwrap_or_default(),
                offset_ms: self.offset_ms,
            };
            let span = info_span!("rung", rung = %rung.name);
            readers.spawn(reader.run(Arc::clone(listener), exited_rx.clone()).instrument(span));
        }

        let stdin = child.stdin.take();
        let pumped = self.pump(&mut child, stdin, input, &mut readers).await;
        if pumped.is_err() {
            let _ = child.start_kill();
        }
        let status = match timeout(EXIT_GRACE, child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                warn!("ffmpeg did not exit after its input ended; killing it");
                let _ = child.kill().await;
                None
            }
        };
        let _ = exited_tx.send(true);
        let deadline = Instant::now() + READER_GRACE;
        loop {
            match timeout_at(deadline, readers.join_next()).await {
                Ok(Some(joined)) => {
                    self.reader_done(joined);
                }
                Ok(None) => break,
                Err(_) => {
                    warn!("rung readers did not finish in time; their last segments are lost");
                    readers.abort_all();
                    while readers.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let tail = match stderr {
            Some(h) => timeout(Duration::from_secs(1), h).await.ok().and_then(|r| r.ok()),
            None => None,
        }
        .unwrap_or_default();
        match pumped {
            Ok(()) => {
                if status.is_some_and(|s| !s.success()) && !tail.is_empty() {
                    debug!(stderr = %tail, "ffmpeg exited with an error at the end of the input");
                }
                Run::InputEnded
            }
            Err(why) => Run::Failed(if tail.is_empty() {
                why
            } else {
                format!("{why}; ffmpeg said: {tail}")
            }),
        }
    }

    /// Feeds ffmpeg until the input ends (`Ok`) or ffmpeg or a rung fails (`Err`).
    async fn pump(
        &mut self,
        child: &mut Child,
        stdin: Option<ChildStdin>,
        input: &mut Input,
        readers: &mut JoinSet<ReaderEnd>,
    ) -> std::result::Result<(), String> {
        let mut stdin = stdin.ok_or("ffmpeg has no stdin")?;
        let idle = self.shared.cfg.idle_timeout;
        let mut started = false;
        loop {
            let item = tokio::select! {
                item = input.recv() => item,
                status = child.wait() => {
                    return Err(match status {
                        Ok(s) => format!("ffmpeg exited ({s})"),
                        Err(e) => format!("waiting for ffmpeg: {e}"),
                    });
                }
                Some(joined) = readers.join_next() => {
                    let why = self.reader_done(joined);
                    return Err(format!("rung output ended while the source is live: {why}"));
                }
            };
            let Some(item) = item else {
                return Ok(()); // dropping stdin tells ffmpeg the input ended
            };
            let bytes = if started {
                flv_stream::tag(item.kind, item.ts_ms, &item.body)
            } else if item.is_keyframe() {
                started = true;
                input.start_bytes(self.audio, &item).map(BytesMut::freeze)
            } else {
                continue; // a run starts at a keyframe
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "tag not passed to ffmpeg");
                    continue;
                }
            };
            match timeout(idle, stdin.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("writing to ffmpeg: {e}")),
                Err(_) => return Err(format!("ffmpeg read no input for {idle:?}")),
            }
        }
    }

    /// Records a finished reader's timeline; returns how it ended, for the log.
    fn reader_done(&mut self, joined: std::result::Result<ReaderEnd, JoinError>) -> String {
        match joined {
            Ok(end) => {
                self.timelines.insert(end.name.clone(), end.timeline);
                match end.result {
                    Ok(()) => format!("{}: end of stream", end.name),
                    Err(e) => format!("{}: {e}", end.name),
                }
            }
            Err(e) => {
                if e.is_panic() {
                    error!(error = %e, "rung reader panicked");
                }
                format!("rung reader: {e}")
            }
        }
    }
}

/// Reads ffmpeg's stderr to the log at debug; returns the last lines, each line bounded.
async fn stderr_tail(mut err: ChildStderr) -> String {
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL);
    let mut line = Vec::with_capacity(STDERR_LINE);
    let mut chunk = [0u8; 1024];
    let mut emit = |line: &mut Vec<u8>| {
        if line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        line.clear();
        debug!(target: "ingest::ffmpeg", "{text}");
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    loop {
        let n = match err.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' || b == b'\r' {
                emit(&mut line);
            } else if line.len() < STDERR_LINE {
                line.push(b);
            }
        }
    }
    emit(&mut line);
    Vec::from(tail).join(" | ")
}
