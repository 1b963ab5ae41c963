//! One rung's reader: accepts ffmpeg's connection on the rung's socket, reads FLV tags and
//! segments them like the source.

use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::{debug, warn};

use super::*;
use crate::IngestEvent;
use crate::clock::{Clock, Timeline};
use crate::error::{Error, Result};
use crate::flv_stream::{self, TAG_AUDIO};
use crate::segmenter::Segmenter;
use crate::server::Shared;

/// How a rung reader ended.
#[derive(Debug)]
pub(super) struct ReaderEnd {
    pub(super) name: String,
    pub(super) timeline: Timeline,
    pub(super) result: Result<()>,
}

/// Reads one rung's FLV from its socket and segments it like the source.
#[derive(Debug)]
pub(super) struct RungReader {
    pub(super) shared: Arc<Shared>,
    pub(super) stream: String,
    pub(super) session: u64,
    pub(super) name: String,
    pub(super) timeline: Timeline,
    pub(super) offset_ms: i64,
}

impl RungReader {
    pub(super) async fn run(self, listener: Arc<UnixListener>, mut exited: watch::Receiver<bool>) -> ReaderEnd {
        let accepted = tokio::select! {
            biased;
            a = timeout(CONNECT_TIMEOUT, listener.accept()) => a,
            _ = exited.wait_for(|e| *e) => return self.end(Ok(())),
        };
        let socket = match accepted {
            Ok(Ok((s, _))) => s,
            Ok(Err(e)) => return self.end(Err(e.into())),
            Err(_) => return self.end(Err(Error::Timeout("ffmpeg connecting its output"))),
        };
        let cfg = &self.shared.cfg;
        let mut segmenter = Segmenter::new(
            self.stream.clone(),
            self.session,
            cfg.container,
            cfg.target_duration,
            cfg.max_segment_bytes,
            self.timeline,
        )
        .for_rung(&self.name, Clock::fixed(self.timeline.next_start_ms, self.offset_ms))
        .with_part_target(cfg.part_target);
        let mut reader = flv_stream::Reader::new(socket, cfg.max_message_size);
        let result = self.read(&mut reader, &mut segmenter).await;
        match segmenter.flush() {
            Ok(segs) => {
                let parts = segmenter.take_parts().into_iter().map(IngestEvent::Part);
                for ev in parts.chain(segs.into_iter().map(IngestEvent::Segment)) {
                    let sent = timeout(READER_GRACE, self.send(ev)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        warn!("final rung segment dropped: event receiver is not reading");
                    }
                }
            }
            Err(e) => warn!(error = %e, "final rung segment failed"),
        }
        ReaderEnd {
            timeline: segmenter.timeline(),
            name: self.name,
            result,
        }
    }

    async fn read(
        &self,
        reader: &mut flv_stream::Reader<tokio::net::UnixStream>,
        segmenter: &mut Segmenter,
    ) -> Result<()> {
        let idle = self.shared.cfg.idle_timeout;
        loop {
            let Some(tag) = timeout(idle, reader.next())
                .await
                .map_err(|_| Error::Timeout("rung output"))??
            else {
                return Ok(());
            };
            let segments = match tag.kind {
                TAG_VIDEO => segmenter.video(tag.ts_ms, &tag.body)?,
                TAG_AUDIO => segmenter.audio(tag.ts_ms, &tag.body)?,
                _ => continue,
            };
            let parts = segmenter.take_parts().into_iter().map(IngestEvent::Part);
            for ev in parts.chain(segments.into_iter().map(IngestEvent::Segment)) {
                self.send(ev).await?;
            }
        }
    }

    async fn send(&self, ev: IngestEvent) -> Result<()> {
        if let IngestEvent::Segment(s) = &ev {
            debug!(
                sequence = s.sequence,
                duration_us = s.duration_us,
                bytes = s.data.len(),
                "segment"
            );
        }
        self.shared
            .events
            .send(ev)
            .await
            .map_err(|_| Error::Rtmp("event receiver dropped".into()))
    }

    fn end(self, result: Result<()>) -> ReaderEnd {
        ReaderEnd {
            name: self.name,
            timeline: self.timeline,
            result,
        }
    }
}
