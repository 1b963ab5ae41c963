//! One RTMP connection: handshake, session, publish authorisation and media to the
//! segmenter. Every network await has a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::sessions::{ServerSessionEvent, ServerSessionResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, info, warn};

use crate::admission::{ConnId, PublishRefused};
use crate::chunk_guard::ChunkGuard;
use crate::error::{Error, Result};
use crate::rtmp::{HandshakeStep, ServerHandshake, Session};
use crate::segmenter::Segmenter;
use crate::server::{Claim, ClaimError, Shared};
#[cfg(unix)]
use crate::transcoder::Ladder;
use crate::{EndReason, IngestEvent, Refusal, Segment};

/// Bytes read from the socket at a time.
const READ_BUF: usize = 16 * 1024;
/// Time allowed to hand the final segment and Unpublished to the caller.
const FINAL_SEND: Duration = Duration::from_secs(5);

struct Publish {
    claim: Claim,
    segmenter: Segmenter,
    #[cfg(unix)]
    ladder: Option<Ladder>,
}

struct Conn<S> {
    shared: Arc<Shared>,
    /// This connection's place in the admission table.
    id: ConnId,
    socket: S,
    guard: ChunkGuard,
    session: Session,
    publish: Option<Publish>,
    last_media: Instant,
    close: bool,
    /// Reported with Unpublished; a publish that just stops being fed is a disconnect.
    end_reason: EndReason,
}

/// Serves one connection, accepted at `started` and admitted as `id`, until it closes, fails,
/// times out, is taken over or `stop` fires.
pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    mut socket: S,
    mut stop: watch::Receiver<bool>,
    started: Instant,
    id: ConnId,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let publish_deadline = started + shared.cfg.handshake_timeout;
    let leftover = match handshake(&mut socket, publish_deadline).await {
        Ok(l) => l,
        Err(e) => {
            if matches!(e, Error::Timeout(_)) {
                shared.refuse(Refusal::HandshakeTimeout);
            }
            return Err(e);
        }
    };
    let (session, initial) = Session::new()?;
    let guard = ChunkGuard::new(shared.cfg.max_message_size);
    let mut conn = Conn {
        shared,
        id,
        socket,
        guard,
        session,
        publish: None,
        last_media: started,
        close: false,
        end_reason: EndReason::Disconnected,
    };
    let result = async {
        conn.apply(initial).await?;
        if !leftover.is_empty() {
            conn.input(&leftover).await?;
        }
        conn.read_loop(publish_deadline, &mut stop).await
    }
    .await;
    conn.end_publish().await;
    result
}

async fn handshake(socket: &mut (impl AsyncRead + AsyncWrite + Unpin), deadline: Instant) -> Result<Vec<u8>> {
    let mut hs = ServerHandshake::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = timeout_at(deadline, socket.read(&mut buf))
            .await
            .map_err(|_| Error::Timeout("handshake"))??;
        if n == 0 {
            return Err(Error::Rtmp("closed during handshake".into()));
        }
        match hs.process(&buf[..n])? {
            HandshakeStep::InProgress(response) => {
                timeout_at(deadline, socket.write_all(&response))
                    .await
                    .map_err(|_| Error::Timeout("handshake write"))??;
            }
            HandshakeStep::Done { response, remaining } => {
                timeout_at(deadline, socket.write_all(&response))
                    .await
                    .map_err(|_| Error::Timeout("handshake write"))??;
                return Ok(remaining);
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Chunk-stream bytes: checked by the guard first, then handed to rml_rtmp one message
    /// at a time, reacting to each before the next is read. rml_rtmp handles every message of
    /// one call before we can accept anything, so a client that sends connect, createStream
    /// and publish without waiting for replies would otherwise be told it is not connected.
    async fn input(&mut self, bytes: &[u8]) -> Result<()> {
        self.guard.feed(bytes)?;
        let ends = self.guard.message_ends().to_vec();
        let mut start = 0;
        for end in ends.into_iter().chain(std::iter::once(bytes.len())) {
            if end > start && !self.close {
                let results = self.session.handle_input(&bytes[start..end])?;
                self.apply(results).await?;
            }
            start = end;
        }
        Ok(())
    }

    async fn read_loop(&mut self, publish_deadline: Instant, stop: &mut watch::Receiver<bool>) -> Result<()> {
        let mut buf = vec![0u8; READ_BUF];
        let idle = self.shared.cfg.idle_timeout;
        while !self.close {
            let deadline = if self.publish.is_some() {
                self.last_media + idle
            } else {
                publish_deadline
            };
            let publish = &mut self.publish;
            let taken_over = async move {
                match publish {
                    Some(p) => {
                        // A dropped sender means a newer publish replaced this one too.
                        let _ = (&mut p.claim.taken_over).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                biased;
                _ = stop.changed() => {
                    debug!("shutdown");
                    self.end_reason = EndReason::Shutdown;
                    return Ok(());
                }
                () = taken_over => {
                    info!("taken over by a newer connection with the stream key; closing this one");
                    self.end_reason = EndReason::TakenOver;
                    return Ok(());
                }
                r = timeout_at(deadline, self.socket.read(&mut buf)) => r,
            };
            let n = match read {
                Err(_) if self.publish.is_some() => return Err(Error::Timeout("no media")),
                Err(_) => {
                    self.shared.refuse(Refusal::HandshakeTimeout);
                    return Err(Error::Timeout("no publish"));
                }
                Ok(r) => r?,
            };
            if n == 0 {
                return Ok(());
            }
            self.input(&buf[..n]).await?;
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        timeout(self.shared.cfg.idle_timeout, self.socket.write_all(bytes))
            .await
            .map_err(|_| Error::Timeout("write"))??;
        Ok(())
    }

    async fn apply(&mut self, results: Vec<ServerSessionResult>) -> Result<()> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => {
                    let follow_up = self.event(event).await?;
                    for r in follow_up {
                        if let ServerSessionResult::OutboundResponse(p) = r {
                            self.write(&p.bytes).await?;
                        }
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    debug!(type_id = payload.type_id, "unhandled RTMP message");
                }
            }
            if self.close {
                break;
            }
        }
        Ok(())
    }

    /// Reacts to one session event; returns packets the reaction produced.
    async fn event(&mut self, event: ServerSessionEvent) -> Result<Vec<ServerSessionResult>> {
        let cfg = &self.shared.cfg;
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                if app_name.trim_end_matches('/') == cfg.app {
                    self.session.accept(request_id)
                } else {
                    warn!(%app_name, "connect to unknown app refused");
                    self.shared.refuse(Refusal::UnknownApp);
                    self.close = true;
                    self.session
                        .reject(request_id, "NetConnection.Connect.Rejected", "unknown application")
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id, stream_key, ..
            } => self.publish_requested(request_id, &stream_key).await,
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.end_reason = EndReason::Finished;
                self.end_publish().await;
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                info!("play requested on an ingest-only server, refused");
                self.shared.refuse(Refusal::UnknownApp);
                self.close = true;
                self.session.reject(request_id, "NetStream.Play.Failed", "ingest only")
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = &mut self.publish {
                    p.segmenter
                        .set_metadata_size(metadata.video_width.unwrap_or(0), metadata.video_height.unwrap_or(0));
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                self.media(true, timestamp.value, data).await?;
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                self.media(false, timestamp.value, data).await?;
                Ok(Vec::new())
            }
            other => {
                debug!(event = ?other, "ignored session event");
                Ok(Vec::new())
            }
        }
    }

    async fn publish_requested(&mut self, request_id: u32, key: &str) -> Result<Vec<ServerSessionResult>> {
        if self.publish.is_some() {
            warn!("second publish on one connection refused");
            self.close = true;
            return self
                .session
                .reject(request_id, "NetStream.Publish.BadName", "already publishing");
        }
        if !self.shared.knows_key(key) {
            // Never log the key itself: it is a secret.
            warn!(key_len = key.len(), "publish with unknown stream key refused");
            self.shared.refuse(Refusal::UnknownKey);
            self.close = true;
            return self
                .session
                .reject(request_id, "NetStream.Publish.BadName", "stream key refused");
        }
        match self.shared.start_publishing(self.id) {
            Ok(()) => {}
            Err(PublishRefused::Gone) => {
                // Evicted a moment ago: the server is closing this connection.
                self.close = true;
                return Ok(Vec::new());
            }
            Err(PublishRefused::PublisherLimit) => {
                warn!(
                    max = self.shared.cfg.max_publishers,
                    "publish refused: too many publishing connections"
                );
                self.shared.refuse(Refusal::PublisherLimit);
                self.close = true;
                return self
                    .session
                    .reject(request_id, "NetStream.Publish.BadName", "server busy");
            }
        }
        match self.shared.claim(key).await {
            Err(ClaimError::UnknownKey) => {
                self.shared.refuse(Refusal::UnknownKey);
                self.close = true;
                self.session
                    .reject(request_id, "NetStream.Publish.BadName", "stream key refused")
            }
            Err(ClaimError::Superseded) => {
                info!("publish refused: a newer connection with the same key is taking over");
                self.shared.refuse(Refusal::Superseded);
                self.close = true;
                self.session
                    .reject(request_id, "NetStream.Publish.BadName", "superseded by a newer publish")
            }
            Ok(claim) => {
                let cfg = &self.shared.cfg;
                cfg.stats.publishes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                info!(stream = %claim.stream, session = claim.session, "publishing");
                let segmenter = Segmenter::new(
                    claim.stream.clone(),
                    claim.session,
                    cfg.container,
                    cfg.target_duration,
                    cfg.max_segment_bytes,
                    claim.timeline,
                )
                .with_part_target(cfg.part_target);
                #[cfg(unix)]
                let ladder = (!cfg.ladder.is_empty()).then(|| {
                    Ladder::new(
                        Arc::clone(&self.shared),
                        claim.stream.clone(),
                        claim.session,
                        claim.timeline.next_start_ms,
                        claim.rungs.clone(),
                    )
                });
                let event = IngestEvent::Publishing {
                    stream: claim.stream.clone(),
                    session: claim.session,
                };
                self.publish = Some(Publish {
                    claim,
                    segmenter,
                    #[cfg(unix)]
                    ladder,
                });
                self.last_media = Instant::now();
                self.send(event).await?;
                self.session.accept(request_id)
            }
        }
    }

    async fn media(&mut self, video: bool, ts: u32, data: Bytes) -> Result<()> {
        let max = self.shared.cfg.max_message_size;
        if data.len() > max {
            return Err(Error::Limit {
                what: "media message",
                got: data.len(),
                max,
            });
        }
        let Some(p) = &mut self.publish else {
            return Ok(());
        };
        self.last_media = Instant::now();
        let segments = if video {
            p.segmenter.video(ts, &data)?
        } else {
            p.segmenter.audio(ts, &data)?
        };
        #[cfg(unix)]
        if let Some(ladder) = &mut p.ladder {
            ladder.push(video, p.segmenter.mapped_ms(), &data);
        }
        for mut part in p.segmenter.take_parts() {
            part.received = Some(self.last_media.into_std());
            self.send(IngestEvent::Part(part)).await?;
        }
        for s in segments {
            self.send_segment(s).await?;
        }
        Ok(())
    }

    async fn send_segment(&mut self, s: Segment) -> Result<()> {
        debug!(
            sequence = s.sequence,
            duration_us = s.duration_us,
            bytes = s.data.len(),
            "segment"
        );
        self.send(IngestEvent::Segment(s)).await
    }

    async fn send(&self, event: IngestEvent) -> Result<()> {
        // Backpressure: a slow consumer slows the publisher through TCP.
        self.shared
            .events
            .send(event)
            .await
            .map_err(|_| Error::Rtmp("event receiver dropped".into()))
    }

    /// Flushes the partial segment and reports Unpublished; idempotent.
    async fn end_publish(&mut self) {
        let Some(mut p) = self.publish.take() else {
            return;
        };
        let flushed = p.segmenter.flush();
        p.claim.set_timeline(p.segmenter.timeline());
        let events = &self.shared.events;
        match flushed {
            Ok(segs) => {
                let parts = p.segmenter.take_parts().into_iter().map(IngestEvent::Part);
                for ev in parts.chain(segs.into_iter().map(IngestEvent::Segment)) {
                    if timeout(FINAL_SEND, events.send(ev)).await.is_err() {
                        warn!("final segment dropped: event receiver is not reading");
                    }
                }
            }
            Err(e) => warn!(error = %e, "final segment failed"),
        }
        // The rungs' last segments come before Unpublished, and the stream stays claimed
        // until they are out, so their timelines carry over to the next publisher.
        #[cfg(unix)]
        if let Some(ladder) = p.ladder.take() {
            p.claim.rungs = ladder.finish().await;
        }
        let reason = self.end_reason;
        let ev = IngestEvent::Unpublished {
            stream: p.claim.stream.clone(),
            session: p.claim.session,
            reason,
        };
        let _ = timeout(FINAL_SEND, events.send(ev)).await;
        info!(stream = %p.claim.stream, session = p.claim.session, ?reason, "unpublished");
    }
}
