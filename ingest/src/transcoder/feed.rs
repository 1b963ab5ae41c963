//! The feed side: owned by the source connection, turns source tags into [`Item`]s and
//! queues them for the supervisor without ever waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::supervisor::{Input, Supervisor};
use super::*;
use crate::IngestStats;
use crate::clock::Timeline;
use crate::codec::VideoCodec;
use crate::flv::{self, AudioTag, VideoTag};
use crate::flv_stream::TAG_AUDIO;
use crate::ladder::Rung;
use crate::server::Shared;

/// The feed side of a session's ladder, owned by the source connection. Every call is
/// synchronous and cheap: it never waits for ffmpeg.
#[derive(Debug)]
pub(crate) struct Ladder {
    shared: Arc<Shared>,
    stream: String,
    session: u64,
    /// Timeline time of the session's first frame (the source clock's base).
    base_ms: u64,
    /// Rung timelines at the start of the session, handed back if the ladder never ran.
    timelines: HashMap<String, Timeline>,
    /// Feed timestamp of the last frame, given to configs.
    last_ts: u32,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Collecting the decoder configurations until the first keyframe.
    Waiting {
        video: Option<(u32, Bytes)>,
        audio: Option<Bytes>,
    },
    Running(Feed),
    Off,
}

#[derive(Debug)]
struct Feed {
    tx: mpsc::Sender<Item>,
    queued: Arc<AtomicUsize>,
    video_cfg: Item,
    audio_cfg: Option<Item>,
    audio: bool,
    /// Input was dropped: skip everything up to the next keyframe.
    resync: bool,
    /// The supervisor gave up or the source changed codec: stop feeding.
    halted: bool,
    episodes: u32,
    task: Task,
}

/// The supervisor's handle; aborts it (and so kills ffmpeg) when dropped.
#[derive(Debug)]
struct Task(Option<JoinHandle<HashMap<String, Timeline>>>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

impl Ladder {
    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: String,
        session: u64,
        base_ms: u64,
        timelines: HashMap<String, Timeline>,
    ) -> Self {
        Self {
            shared,
            stream,
            session,
            base_ms,
            timelines,
            last_ts: FEED_ORIGIN_MS as u32,
            state: State::Waiting {
                video: None,
                audio: None,
            },
        }
    }

    /// Takes one source tag body the segmenter has just handled; `mapped_ms` is where the
    /// segmenter put it on the timeline (`None` for configs and tags it did not time).
    pub(crate) fn push(&mut self, video: bool, mapped_ms: Option<u64>, body: &Bytes) {
        if matches!(self.state, State::Off) {
            return;
        }
        let ts_ms =
            mapped_ms.map(|ms| u32::try_from(ms.saturating_sub(self.base_ms) + FEED_ORIGIN_MS).unwrap_or(u32::MAX));
        if let Some(ts) = ts_ms {
            self.last_ts = ts;
        }
        let item = if video {
            match flv::parse_video(body) {
                Ok(VideoTag::Config(cfg)) if cfg.codec == VideoCodec::Avc => {
                    let height = cfg.height;
                    let item = Item {
                        kind: TAG_VIDEO,
                        ts_ms: self.last_ts,
                        body: avc_config_body(&cfg.record),
                        keyframe: true,
                        config: true,
                    };
                    if let State::Waiting { video, .. } = &mut self.state {
                        *video = Some((height, item.body.clone()));
                        return;
                    }
                    item
                }
                Ok(VideoTag::Config(cfg)) => {
                    warn!(codec = ?cfg.codec, "the ABR ladder needs an H.264 source: no rungs for this publish");
                    self.halt();
                    return;
                }
                Ok(VideoTag::Frame {
                    codec: VideoCodec::Avc,
                    keyframe,
                    cts_ms,
                    data,
                }) => {
                    let Some(ts_ms) = ts_ms else { return };
                    // Classic AVC tags go through as they are; Enhanced RTMP ones are
                    // rewritten classic, which every ffmpeg reads.
                    let body = if body.first().is_some_and(|b| b & 0x80 == 0) {
                        body.clone()
                    } else {
                        avc_frame_body(keyframe, cts_ms, &data)
                    };
                    Item {
                        kind: TAG_VIDEO,
                        ts_ms,
                        body,
                        keyframe,
                        config: false,
                    }
                }
                _ => return,
            }
        } else {
            let config = match flv::parse_audio(body) {
                Ok(AudioTag::Config(_)) => true,
                Ok(AudioTag::Frame(_)) => false,
                Err(_) => return,
            };
            if config && let State::Waiting { audio, .. } = &mut self.state {
                *audio = Some(body.clone());
                return;
            }
            let Some(ts_ms) = ts_ms.or(config.then_some(self.last_ts)) else {
                return;
            };
            Item {
                kind: TAG_AUDIO,
                ts_ms,
                body: body.clone(),
                keyframe: true,
                config,
            }
        };
        if let State::Waiting { video, audio } = &mut self.state {
            // The first keyframe after a video config starts the ladder.
            if !item.is_keyframe() {
                return;
            }
            let Some((height, video_cfg)) = video.take() else {
                return;
            };
            let audio = audio.take();
            self.state = self.start(height, video_cfg, audio, item.ts_ms);
        }
        if let State::Running(feed) = &mut self.state {
            feed.push(item, &self.shared.cfg.stats);
        }
    }

    fn halt(&mut self) {
        match &mut self.state {
            State::Running(feed) => feed.halted = true,
            _ => self.state = State::Off,
        }
    }

    fn start(&mut self, height: u32, video_cfg: Bytes, audio_cfg: Option<Bytes>, ts_ms: u32) -> State {
        let cfg = &self.shared.cfg;
        let (rungs, skipped): (Vec<Rung>, Vec<Rung>) = cfg.ladder.iter().cloned().partition(|r| r.height < height);
        for r in &skipped {
            info!(rung = %r.name, source_height = height, "ladder rung skipped: not below the source");
        }
        if rungs.is_empty() {
            return State::Off;
        }
        let (tx, rx) = mpsc::channel(QUEUE_TAGS);
        let queued = Arc::new(AtomicUsize::new(0));
        let config_item = |kind, body| Item {
            kind,
            ts_ms,
            body,
            keyframe: true,
            config: true,
        };
        let video_cfg = config_item(TAG_VIDEO, video_cfg);
        // fMP4 rungs are video only: every video rendition plays with the source's audio
        // rendition. MPEG-TS muxes audio into every rung.
        let audio_cfg = audio_cfg
            .filter(|_| cfg.container == crate::Container::Ts)
            .map(|b| config_item(TAG_AUDIO, b));
        let supervisor = Supervisor {
            shared: Arc::clone(&self.shared),
            stream: self.stream.clone(),
            session: self.session,
            rungs,
            audio: audio_cfg.is_some(),
            offset_ms: i64::try_from(self.base_ms).unwrap_or(i64::MAX) - FEED_ORIGIN_MS as i64,
            timelines: self.timelines.clone(),
        };
        let input = Input {
            rx,
            queued: Arc::clone(&queued),
            video_cfg: None,
            audio_cfg: None,
        };
        let span = info_span!("ladder", stream = %self.stream, session = self.session);
        let task = tokio::spawn(supervisor.run(input).instrument(span));
        let mut feed = Feed {
            tx,
            queued,
            audio: audio_cfg.is_some(),
            video_cfg: video_cfg.clone(),
            audio_cfg: audio_cfg.clone(),
            resync: false,
            halted: false,
            episodes: 0,
            task: Task(Some(task)),
        };
        feed.push(video_cfg, &self.shared.cfg.stats);
        if let Some(a) = audio_cfg {
            feed.push(a, &self.shared.cfg.stats);
        }
        State::Running(feed)
    }

    /// Ends the ladder: closes ffmpeg's input, waits (bounded) until ffmpeg has flushed and
    /// every rung's last segment is sent, and returns the rung timelines for the next session.
    pub(crate) async fn finish(self) -> HashMap<String, Timeline> {
        let State::Running(feed) = self.state else {
            return self.timelines;
        };
        let Feed { tx, mut task, .. } = feed;
        drop(tx);
        let Some(handle) = task.0.take() else {
            return self.timelines;
        };
        let abort = handle.abort_handle();
        match timeout(FINISH_DEADLINE, handle).await {
            Ok(Ok(timelines)) => timelines,
            Ok(Err(e)) => {
                error!(error = %e, "ABR ladder task failed");
                self.timelines
            }
            Err(_) => {
                error!("ABR ladder did not finish in time; stopping it");
                abort.abort();
                self.timelines
            }
        }
    }
}

impl Feed {
    fn push(&mut self, item: Item, stats: &IngestStats) {
        if self.halted {
            return;
        }
        if item.config {
            if item.kind == TAG_VIDEO {
                self.video_cfg = item.clone();
            } else {
                self.audio_cfg = Some(item.clone());
            }
        }
        if item.kind == TAG_AUDIO && !self.audio {
            return; // ffmpeg was started without an audio stream
        }
        if self.resync {
            if !item.is_keyframe() {
                if !item.config {
                    stats.ladder_dropped.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            // Resume at this keyframe, configs first, once the queue has room again.
            let mut batch = vec![Item {
                ts_ms: item.ts_ms,
                ..self.video_cfg.clone()
            }];
            if let Some(a) = &self.audio_cfg {
                batch.push(Item {
                    ts_ms: item.ts_ms,
                    ..a.clone()
                });
            }
            batch.push(item);
            let bytes: usize = batch.iter().map(|i| i.body.len()).sum();
            let room =
                self.tx.capacity() >= QUEUE_TAGS / 2 && self.queued.load(Ordering::Relaxed) + bytes <= QUEUE_BYTES / 2;
            if !room {
                stats.ladder_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            for i in batch {
                if !self.try_send(i) {
                    return;
                }
            }
            self.resync = false;
            debug!("ABR ladder input resumed at a keyframe");
            return;
        }
        if !self.try_send(item) && !self.halted {
            self.resync = true;
            self.episodes = self.episodes.saturating_add(1);
            stats.ladder_dropped.fetch_add(1, Ordering::Relaxed);
            if self.episodes <= LOUD_DROPS {
                warn!(
                    episode = self.episodes,
                    "ffmpeg is not keeping up with the ABR ladder: dropping its input up to the next keyframe (the source is unaffected)"
                );
            } else {
                debug!(episode = self.episodes, "ABR ladder input dropped");
            }
        }
    }

    /// Queues one item within both bounds; `false` when it was not queued.
    fn try_send(&mut self, item: Item) -> bool {
        let len = item.body.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(e) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                if matches!(e, TrySendError::Closed(_)) {
                    self.halted = true; // the supervisor gave up; it logged why
                }
                false
            }
        }
    }
}

/// A classic FLV AVC sequence header around an avcC record.
fn avc_config_body(record: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + record.len());
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(record);
    b.freeze()
}

/// A classic FLV AVC NALU tag body.
fn avc_frame_body(keyframe: bool, cts_ms: i32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + data.len());
    b.put_u8(if keyframe { 0x17 } else { 0x27 });
    b.put_u8(1);
    b.put_slice(&cts_ms.to_be_bytes()[1..]);
    b.put_slice(data);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: u8, keyframe: bool, config: bool, ts_ms: u32) -> Item {
        Item {
            kind,
            ts_ms,
            body: Bytes::from_static(&[0; 100]),
            keyframe,
            config,
        }
    }

    #[test]
    fn a_slow_ffmpeg_costs_the_ladder_input_never_the_source() {
        let (tx, mut rx) = mpsc::channel(QUEUE_TAGS);
        let stats = IngestStats::default();
        let mut feed = Feed {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            video_cfg: item(TAG_VIDEO, true, true, 0),
            audio_cfg: Some(item(TAG_AUDIO, true, true, 0)),
            audio: true,
            resync: false,
            halted: false,
            episodes: 0,
            task: Task(None),
        };
        // Nobody reads: the queue fills, then input is dropped (push never waits).
        feed.push(item(TAG_VIDEO, true, false, 0), &stats);
        for ts in 1..=QUEUE_TAGS as u32 + 10 {
            feed.push(item(TAG_VIDEO, false, false, ts), &stats);
        }
        assert!(feed.resync);
        assert_eq!(stats.ladder_dropped_tags(), 11);
        // While resyncing, frames and configs are not queued; a keyframe with no room is dropped.
        feed.push(item(TAG_AUDIO, true, true, 5000), &stats);
        feed.push(item(TAG_VIDEO, true, false, 5001), &stats);
        assert_eq!(stats.ladder_dropped_tags(), 12);
        // ffmpeg catches up: the next keyframe resumes, configs first.
        while rx.try_recv().is_ok() {}
        feed.push(item(TAG_VIDEO, false, false, 5002), &stats);
        feed.push(item(TAG_VIDEO, true, false, 6000), &stats);
        assert!(!feed.resync);
        let resumed: Vec<(u8, bool, u32)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|i| (i.kind, i.config, i.ts_ms))
            .collect();
        assert_eq!(
            resumed,
            [
                (TAG_VIDEO, true, 6000),
                (TAG_AUDIO, true, 6000),
                (TAG_VIDEO, false, 6000)
            ]
        );
        assert_eq!(stats.ladder_dropped_tags(), 13);
        // The reader above did not account; the queue holds what was sent, bytes included.
        assert_eq!(feed.queued.load(Ordering::Relaxed), (QUEUE_TAGS + 3) * 100);
    }

    #[test]
    fn enhanced_avc_is_rewritten_classic() {
        let body = avc_frame_body(true, -33, &[0, 0, 0, 1, 0x65]);
        match flv::parse_video(&body).unwrap() {
            VideoTag::Frame {
                codec,
                keyframe,
                cts_ms,
                data,
            } => {
                assert_eq!((codec, keyframe, cts_ms), (VideoCodec::Avc, true, -33));
                assert_eq!(&data[..], &[0, 0, 0, 1, 0x65]);
            }
            other => panic!("{other:?}"),
        }
        let cfg = avc_config_body(&crate::codec::tests::avcc());
        assert!(matches!(flv::parse_video(&cfg).unwrap(), VideoTag::Config(c) if c.codec == VideoCodec::Avc));
    }
}
