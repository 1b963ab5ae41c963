//! Turns parsed FLV tags into HLS segments: maps RTMP timestamps onto the stream timeline,
//! decides the track layout, cuts at keyframes (audio-only: by duration) and calls the
//! fMP4 or TS muxer.

use std::collections::HashMap;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::clock::{AUDIO, Clock, Timeline, VIDEO, ms_to_ticks, ticks_to_us};
use crate::codec::{AudioConfig, VideoConfig};
use crate::error::Result;
use crate::flv::{self, AudioTag, VideoTag};
use crate::fmp4::{self, TrackSpec, VIDEO_TIMESCALE};
use crate::ts::TsMuxer;
use crate::{AUDIO_RENDITION, Container, Part, Segment, TrackInfo};
use mux::Track;
use parts::Chunks;

mod mux;
mod parts;

/// Samples per AAC frame.
const AAC_FRAME: u64 = 1024;
/// Without a video sequence header after this many AAC frames (~1 s), the stream is audio-only.
const AUDIO_ONLY_AFTER_FRAMES: u32 = 48;
/// Pending samples per track are bounded (a 10 s segment at 120 fps is 1200 frames).
const MAX_PENDING_SAMPLES: usize = 20_000;
/// Most advice notes kept per publish.
const MAX_ADVICE: usize = 8;
/// Keyframes further apart than the segment target plus this get a note to the broadcaster:
/// segments are then cut between keyframes (EXT-X-TARGETDURATION may not grow).
const LONG_GOP_MS: u64 = 500;

/// One coded frame on the timeline, in its track's timescale.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub ticks: u64,
    /// PTS - DTS in ticks.
    pub cts: i32,
    pub keyframe: bool,
    pub data: Bytes,
}

#[derive(Debug)]
struct Layout {
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    width: u32,
    height: u32,
    /// fMP4: the init segment of the video track (of the audio track when audio-only).
    init: Option<Bytes>,
    /// fMP4 with video and audio: the audio rendition's own init segment.
    audio_init: Option<Bytes>,
    ts: Option<TsMuxer>,
}

/// Per-session segmenter. Feed it tag bodies; it returns finished segments.
#[derive(Debug)]
pub(crate) struct Segmenter {
    stream: String,
    session: u64,
    rendition: String,
    container: Container,
    target_ms: u64,
    max_bytes: usize,
    timeline: Timeline,
    clock: Clock,
    /// Timeline time of the frame the last `video`/`audio` call mapped, if any.
    mapped_ms: Option<u64>,
    video_cfg: Option<VideoConfig>,
    audio_cfg: Option<AudioConfig>,
    meta_size: (u32, u32),
    layout: Option<Layout>,
    video: Vec<Sample>,
    audio: Vec<Sample>,
    pending_bytes: usize,
    last_video_ticks: Option<u64>,
    last_video_duration: u64,
    audio_next: Option<u64>,
    audio_frames_without_video: u32,
    /// AAC frames held while it is not yet known whether video will come (at most
    /// [`AUDIO_ONLY_AFTER_FRAMES`]): an audio-only stream keeps its first second.
    early_audio: Vec<(u64, Bytes)>,
    /// Presentation time of the last keyframe, for the keyframe-interval advice.
    last_keyframe_pts: Option<i64>,
    /// What the broadcaster should change, said once per publish (log and dashboard).
    advice: Vec<String>,
    discontinuity: bool,
    /// An fMP4 ladder rung: audio is ignored (the source's audio rendition plays with it).
    video_only: bool,
    /// The CMAF chunks (parts) of the segment in progress.
    chunks: Chunks,
    /// Parts completed and not yet taken ([`Segmenter::take_parts`]).
    parts: Vec<Part>,
    /// Highest single-segment bit rate so far, per rendition this segmenter makes.
    peak_bps: HashMap<String, u64>,
}

impl Segmenter {
    pub(crate) fn new(
        stream: String,
        session: u64,
        container: Container,
        target: std::time::Duration,
        max_bytes: usize,
        timeline: Timeline,
    ) -> Self {
        Self {
            stream,
            session,
            rendition: "source".to_owned(),
            container,
            target_ms: u64::try_from(target.as_millis()).unwrap_or(2000).max(100),
            max_bytes,
            clock: Clock::new(timeline.next_start_ms),
            timeline,
            mapped_ms: None,
            video_cfg: None,
            audio_cfg: None,
            meta_size: (0, 0),
            layout: None,
            video: Vec::new(),
            audio: Vec::new(),
            pending_bytes: 0,
            last_video_ticks: None,
            last_video_duration: 3000,
            audio_next: None,
            audio_frames_without_video: 0,
            early_audio: Vec::new(),
            last_keyframe_pts: None,
            advice: Vec::new(),
            discontinuity: true,
            video_only: false,
            chunks: Chunks::new(None),
            parts: Vec::new(),
            peak_bps: HashMap::new(),
        }
    }

    /// Makes this the segmenter of an ABR rung: its own rendition name, and a clock that keeps
    /// the timestamps ffmpeg copied from the source (see [`Clock::fixed`]).
    /// Builds fMP4 segments of parts about `target` long, each reported as a [`Part`]
    /// ([`Segmenter::take_parts`]); `None` (the default) reports none. MPEG-TS has no parts.
    pub(crate) fn with_part_target(mut self, target: Option<std::time::Duration>) -> Self {
        let target = target.filter(|_| self.container == Container::Fmp4);
        self.chunks = Chunks::new(target.map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1000)));
        self
    }

    /// In fMP4 a rung is video only: it plays with the source's audio rendition.
    pub(crate) fn for_rung(mut self, rendition: &str, clock: Clock) -> Self {
        rendition.clone_into(&mut self.rendition);
        self.clock = clock;
        self.video_only = self.container == Container::Fmp4;
        self
    }

    /// Timeline milliseconds of the frame handled by the last `video`/`audio` call; `None`
    /// when that call carried no frame the timeline took (config, dropped or unparsable tag).
    pub(crate) fn mapped_ms(&self) -> Option<u64> {
        self.mapped_ms
    }

    /// The timeline the next session of this stream continues from.
    pub(crate) fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Picture size from `onMetaData`, used when the codec config does not give one (AV1).
    pub(crate) fn set_metadata_size(&mut self, width: u32, height: u32) {
        self.meta_size = (width.min(16384), height.min(16384));
    }

    /// Advice to the broadcaster: logged once per publish and carried with every later
    /// segment ([`Segment::advice`]) for the dashboard.
    fn advise(&mut self, advice: String) {
        if self.advice.len() < MAX_ADVICE && !self.advice.contains(&advice) {
            warn!(rendition = %self.rendition, "publisher: {advice}");
            self.advice.push(advice);
        }
    }

    /// Handles one video tag body at RTMP timestamp `ts_ms`.
    pub(crate) fn video(&mut self, ts_ms: u32, body: &Bytes) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        self.mapped_ms = None;
        let tag = match flv::parse_video(body) {
            Ok(t) => t,
            Err(e @ crate::Error::Unsupported { .. }) => {
                self.advise(format!(
                    "{e}: the video is dropped. Use H.264 (or HEVC/AV1 over Enhanced RTMP)"
                ));
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        match tag {
            VideoTag::Config(cfg) => {
                if self.video_cfg.as_ref() != Some(&cfg) {
                    info!(codecs = %cfg.codecs, width = cfg.width, height = cfg.height, "video config");
                    if let Some(profile) = unplayable_avc_profile(&cfg) {
                        self.advise(format!(
                            "H.264 {profile} passes through, but browsers cannot play it. Use the High \
                             or Main profile with 8-bit 4:2:0 colour (OBS: Settings > Output > Profile: high, \
                             Advanced > Color Format: NV12; ffmpeg: -profile:v high -pix_fmt yuv420p)"
                        ));
                    }
                    let changed = self.layout.as_ref().is_some_and(|l| l.video.as_ref() != Some(&cfg));
                    self.video_cfg = Some(cfg);
                    if changed {
                        self.reset_layout(&mut out)?;
                    }
                }
            }
            VideoTag::Frame {
                codec,
                keyframe,
                cts_ms,
                data,
            } => {
                if self.video_cfg.as_ref().map(|c| c.codec) != Some(codec) {
                    debug!("video frame without a matching sequence header, dropped");
                    return Ok(out);
                }
                let ms = self.clock.map(VIDEO, ts_ms);
                self.mapped_ms = Some(ms);
                // A decode time raised to the floor keeps its presentation time.
                let raised = i32::try_from(self.clock.raised_ms()).unwrap_or(i32::MAX);
                self.video_frame(ms, cts_ms.saturating_sub(raised), keyframe, data, &mut out)?;
            }
            VideoTag::End | VideoTag::Ignored(_) => {}
        }
        Ok(out)
    }

    /// Handles one audio tag body at RTMP timestamp `ts_ms`.
    pub(crate) fn audio(&mut self, ts_ms: u32, body: &Bytes) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        self.mapped_ms = None;
        if self.video_only {
            return Ok(out);
        }
        let tag = match flv::parse_audio(body) {
            Ok(t) => t,
            Err(crate::Error::Unsupported { detail, .. }) => {
                let codec = match detail.as_str() {
                    "SoundFormat 2" | "SoundFormat 14" => "MP3".to_owned(),
                    other => other.to_owned(),
                };
                self.advise(format!(
                    "{codec} audio is not supported and is dropped: the stream has no sound. \
                     Use AAC (OBS: Settings > Output > Audio Encoder; ffmpeg: -c:a aac)"
                ));
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        match tag {
            AudioTag::Config(cfg) => {
                if self.audio_cfg.as_ref() != Some(&cfg) {
                    info!(codecs = %cfg.codecs, rate = cfg.sample_rate, channels = cfg.channels, "audio config");
                    let changed = self.layout.as_ref().is_some_and(|l| l.audio.as_ref() != Some(&cfg));
                    self.audio_cfg = Some(cfg);
                    if changed {
                        self.reset_layout(&mut out)?;
                    }
                }
            }
            AudioTag::Frame(data) => {
                let ms = self.clock.map(AUDIO, ts_ms);
                self.mapped_ms = Some(ms);
                if self.clock.raised_ms() > 0 {
                    // Before the floor (a rung's AAC priming): dropped rather than shifting
                    // all later audio.
                    return Ok(out);
                }
                self.audio_frame(ms, data, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Emits the partial segment, if any. Called when the publish ends.
    pub(crate) fn flush(&mut self) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        self.cut(None, &mut out)?;
        Ok(out)
    }

    fn reset_layout(&mut self, out: &mut Vec<Segment>) -> Result<()> {
        self.cut(None, out)?;
        self.layout = None;
        self.discontinuity = true;
        self.audio_frames_without_video = 0;
        self.early_audio.clear();
        Ok(())
    }

    fn make_layout(&mut self, with_video: bool) -> Result<()> {
        let video = if with_video { self.video_cfg.clone() } else { None };
        if with_video {
            // Audio before the first keyframe is not played with video either.
            self.early_audio.clear();
        }
        let audio = self.audio_cfg.clone();
        let (mut width, mut height) = video.as_ref().map_or((0, 0), |v| (v.width, v.height));
        if video.is_some() && (width == 0 || height == 0) {
            (width, height) = self.meta_size;
        }
        // CMAF: one track per init segment, so the video and the audio are renditions of
        // their own (the audio one is played with every video rendition).
        let video_spec = video.as_ref().map(|v| TrackSpec::Video {
            config: v.clone(),
            width,
            height,
        });
        let audio_spec = audio.as_ref().map(|a| TrackSpec::Audio(a.clone()));
        let init = |spec: TrackSpec| Some(fmp4::init_segment(&[spec]));
        let (init, audio_init, ts) = match (self.container, video_spec, audio_spec) {
            (Container::Ts, ..) => (None, None, Some(TsMuxer::new(video.as_ref(), audio.as_ref())?)),
            (Container::Fmp4, Some(v), a) => (init(v), a.and_then(init), None),
            (Container::Fmp4, None, a) => (a.and_then(init), None, None),
        };
        self.layout = Some(Layout {
            video,
            audio,
            width,
            height,
            init,
            audio_init,
            ts,
        });
        Ok(())
    }

    fn video_frame(&mut self, ms: u64, cts_ms: i32, keyframe: bool, data: Bytes, out: &mut Vec<Segment>) -> Result<()> {
        if self.layout.is_none() {
            if !keyframe {
                return Ok(());
            }
            self.make_layout(true)?;
        }
        if self.layout.as_ref().is_none_or(|l| l.video.is_none()) {
            // Audio-only layout but video appeared: switch layouts at this keyframe.
            if !keyframe {
                return Ok(());
            }
            self.reset_layout(out)?;
            self.make_layout(true)?;
        }
        let pts = ms_to_ticks(ms, VIDEO_TIMESCALE) as i64 + i64::from(cts_ms) * i64::from(VIDEO_TIMESCALE / 1000);
        let mut ticks = ms_to_ticks(ms, VIDEO_TIMESCALE);
        if let Some(last) = self.last_video_ticks
            && ticks <= last
        {
            ticks = last + 1;
        }
        self.last_video_ticks = Some(ticks);
        let cts = i32::try_from(pts - ticks as i64).unwrap_or(0);

        if let Some(first) = self.video.first() {
            let elapsed = ticks.saturating_sub(first.ticks);
            // Keyframe cuts go by presentation time: decode times depend on the encoder's
            // B-frame delay, presentation times do not, so a source and its ABR rungs (which
            // share keyframes and presentation times) are cut at the same keyframes.
            let first_pts = first.ticks as i64 + i64::from(first.cts);
            let shown = u64::try_from(pts - first_pts).unwrap_or(0);
            let target = ms_to_ticks(self.target_ms, VIDEO_TIMESCALE);
            // A keyframe within one frame of the target closes the segment: OBS's first two
            // keyframes come 1999 ms apart with a 2 s interval, and waiting for the next one
            // made the first segment 4 s long.
            let frame = self.last_video_duration.min(u64::from(VIDEO_TIMESCALE));
            // EXT-X-TARGETDURATION is the configured target and must not change (RFC 8216bis
            // §6.2.1), so a segment never reaches it plus half a second (its EXTINF would round
            // above it). At a keyframe the segment closes early when the next keyframe, one
            // GOP on, would come after that ceiling (1.5 s GOPs give 1.5 s segments, not a
            // cut mid-GOP), or when the segment was itself cut without a keyframe (so every
            // keyframe starts an independent segment); a GOP longer than the ceiling is cut
            // without a keyframe.
            let ceiling = ms_to_ticks(self.target_ms.div_ceil(1000) * 1000 + 500, VIDEO_TIMESCALE);
            let gop = self
                .last_keyframe_pts
                .map_or(0, |last| u64::try_from(pts - last).unwrap_or(0));
            let early = shown + gop >= ceiling || !first.keyframe;
            let forced = self.pending_bytes + data.len() > self.max_bytes
                || elapsed + frame * 5 / 4 >= ceiling
                || self.video.len() >= MAX_PENDING_SAMPLES;
            if (keyframe && (shown + frame >= target || early)) || forced {
                if forced && !keyframe {
                    warn!(
                        elapsed_ticks = elapsed,
                        "segment cut without a keyframe; the next one is signed as not independent"
                    );
                }
                self.cut(Some(ticks), out)?;
            }
        }
        self.video_part_due(ticks);
        if keyframe {
            self.keyframe_interval(pts);
        }
        self.pending_bytes += data.len();
        self.video.push(Sample {
            ticks,
            cts,
            keyframe,
            data,
        });
        Ok(())
    }

    fn audio_frame(&mut self, ms: u64, data: Bytes, out: &mut Vec<Segment>) -> Result<()> {
        if self.audio_cfg.is_none() {
            return Ok(());
        }
        if self.layout.is_none() {
            if self.video_cfg.is_some() {
                return Ok(()); // waiting for the first video keyframe
            }
            self.audio_frames_without_video += 1;
            if self.audio_frames_without_video < AUDIO_ONLY_AFTER_FRAMES {
                self.early_audio.push((ms, data));
                return Ok(());
            }
            info!(
                held_frames = self.early_audio.len(),
                "no video sequence header: audio-only stream (from its first frame)"
            );
            self.make_layout(false)?;
            for (ms, data) in std::mem::take(&mut self.early_audio) {
                self.queue_audio(ms, data, out)?;
            }
        }
        self.queue_audio(ms, data, out)
    }

    /// Notes a keyframe interval above what a segment may hold, once per publish: segments
    /// are then cut between keyframes and joining viewers wait for a keyframe.
    fn keyframe_interval(&mut self, pts: i64) {
        let Some(last) = self.last_keyframe_pts.replace(pts) else {
            return;
        };
        let gap_ms = u64::try_from(pts - last).unwrap_or(0) * 1000 / u64::from(VIDEO_TIMESCALE);
        if gap_ms > self.target_ms.div_ceil(1000) * 1000 + LONG_GOP_MS {
            let (gap, target) = (gap_ms as f64 / 1000.0, self.target_ms as f64 / 1000.0);
            self.advise(format!(
                "keyframes are {gap:.1} s apart, above the {target:.0} s segment target: segments are \
                 cut between keyframes, and a viewer who joins waits up to {gap:.1} s for a picture. \
                 Set OBS: Settings > Output > Keyframe Interval to {target:.0} s (not 0 or auto); \
                 ffmpeg: -g <{target:.0} x fps>"
            ));
        }
    }

    fn queue_audio(&mut self, ms: u64, data: Bytes, out: &mut Vec<Segment>) -> Result<()> {
        let Some(cfg) = &self.audio_cfg else {
            return Ok(());
        };
        let rate = cfg.sample_rate;
        let Some(layout) = &self.layout else {
            return Ok(());
        };
        if layout.audio.is_none() {
            return Ok(());
        }
        // A layout with video exists only once its first keyframe is queued, so nothing
        // before the first keyframe gets here.
        let has_video = layout.video.is_some();
        // Keep audio decode times continuous; resync only on a gap of more than two frames.
        let mut ticks = ms_to_ticks(ms, rate);
        if let Some(next) = self.audio_next
            && ticks < next + 2 * AAC_FRAME
        {
            ticks = next;
        }
        self.audio_next = Some(ticks + AAC_FRAME);
        if !has_video {
            if let Some(first) = self.audio.first() {
                let elapsed = ticks.saturating_sub(first.ticks);
                let due = elapsed >= ms_to_ticks(self.target_ms, rate)
                    || self.pending_bytes + data.len() > self.max_bytes
                    || self.audio.len() >= MAX_PENDING_SAMPLES;
                if due {
                    self.cut(None, out)?;
                }
            }
            self.audio_part_due(ticks, rate);
        } else if self.audio.len() >= MAX_PENDING_SAMPLES {
            warn!("too many audio frames without a video keyframe, dropping audio");
            return Ok(());
        }
        self.pending_bytes += data.len();
        self.audio.push(Sample {
            ticks,
            cts: 0,
            keyframe: true,
            data,
        });
        Ok(())
    }

    /// Cuts the pending samples into segments: fMP4 gives one per track (the video in this
    /// segmenter's rendition, the audio in [`AUDIO_RENDITION`] when the stream has video, in
    /// this rendition when it is audio-only), MPEG-TS one with both. `end_video` is the decode
    /// time of the sample that starts the next segment (the last video sample's duration ends
    /// there); `None` takes everything (flush or audio-only).
    fn cut(&mut self, end_video: Option<u64>, out: &mut Vec<Segment>) -> Result<()> {
        let Some(layout) = self.layout.as_mut() else {
            return Ok(());
        };
        let rate = layout.audio.as_ref().map_or(48_000, |a| a.sample_rate);
        let fmp4 = layout.ts.is_none();
        // fMP4: the last part closes here, and the segment is its parts.
        let audio_split = fmp4.then(|| self.close_part(end_video));
        let Some(layout) = self.layout.as_mut() else {
            return Ok(());
        };
        let video = std::mem::take(&mut self.video);
        let audio = match (audio_split, end_video) {
            (Some(split), _) => {
                let rest = self.audio.split_off(split);
                std::mem::replace(&mut self.audio, rest)
            }
            (None, Some(end)) if !video.is_empty() => {
                let end_us = ticks_to_us(end, VIDEO_TIMESCALE);
                let split = self
                    .audio
                    .iter()
                    .position(|s| ticks_to_us(s.ticks, rate) >= end_us)
                    .unwrap_or(self.audio.len());
                let rest = self.audio.split_off(split);
                std::mem::replace(&mut self.audio, rest)
            }
            _ => std::mem::take(&mut self.audio),
        };
        self.pending_bytes = self.audio.iter().map(|s| s.data.len()).sum();
        let video = Track::video(video, end_video, &mut self.last_video_duration);
        let audio = Track::audio(audio, rate);
        if video.is_none() && audio.is_none() {
            return Ok(());
        }
        let discontinuity = std::mem::take(&mut self.discontinuity);
        let video_codecs = layout.video.as_ref().map(|v| v.codecs.as_str());
        let audio_codecs = layout.audio.as_ref().map(|a| a.codecs.as_str());
        let (channels, video_codec) = (
            layout.audio.as_ref().map_or(0, |a| a.channels),
            layout.video.as_ref().map(|v| v.codec),
        );
        let (width, height) = (layout.width, layout.height);
        let sequence = self.timeline.next_sequence;
        let mut made = Vec::with_capacity(2);
        if let Some(ts) = layout.ts.as_mut() {
            let data = mux::ts(ts, video.as_ref(), audio.as_ref())?;
            let (span, start_pts_us) = match (&video, &audio) {
                (Some(v), a) => (v, a.as_ref().map_or(v.first_pts_us, |a| v.first_pts_us.min(a.start_us))),
                (None, Some(a)) => (a, a.start_us),
                (None, None) => return Ok(()),
            };
            let codecs: Vec<&str> = video_codecs.into_iter().chain(audio_codecs).collect();
            made.push(Output {
                rendition: self.rendition.clone(),
                audio_group: false,
                init: None,
                data,
                duration_us: span.duration_us(),
                start_pts_us,
                independent: video.as_ref().is_none_or(Track::independent),
                info: TrackInfo {
                    codecs: codecs.join(","),
                    width,
                    height,
                    frame_rate_milli: video.as_ref().map_or(0, Track::frame_rate_milli),
                    video: video_codec,
                    audio_sample_rate: audio.as_ref().map_or(0, |_| rate),
                    audio_channels: channels,
                    bandwidth: 0,
                },
            });
        } else {
            let (video_bytes, audio_bytes) = self.chunks.take_all();
            if let Some(v) = &video {
                made.push(Output {
                    rendition: self.rendition.clone(),
                    audio_group: false,
                    init: layout.init.clone(),
                    data: video_bytes,
                    duration_us: v.duration_us(),
                    start_pts_us: v.first_pts_us,
                    independent: v.independent(),
                    info: TrackInfo {
                        codecs: video_codecs.unwrap_or_default().to_owned(),
                        width,
                        height,
                        frame_rate_milli: v.frame_rate_milli(),
                        video: video_codec,
                        ..TrackInfo::default()
                    },
                });
            }
            if let Some(a) = &audio {
                let grouped = layout.video.is_some();
                made.push(Output {
                    rendition: if grouped {
                        AUDIO_RENDITION.to_owned()
                    } else {
                        self.rendition.clone()
                    },
                    audio_group: grouped,
                    init: if grouped {
                        layout.audio_init.clone()
                    } else {
                        layout.init.clone()
                    },
                    data: audio_bytes,
                    duration_us: a.duration_us(),
                    start_pts_us: a.start_us,
                    independent: true,
                    info: TrackInfo {
                        codecs: audio_codecs.unwrap_or_default().to_owned(),
                        audio_sample_rate: rate,
                        audio_channels: channels,
                        ..TrackInfo::default()
                    },
                });
            }
        }
        for o in made {
            let peak = self.peak_bps.entry(o.rendition.clone()).or_default();
            let bps = (o.data.len() as u64 * 8)
                .saturating_mul(1_000_000)
                .checked_div(o.duration_us)
                .unwrap_or(0);
            *peak = (*peak).max(bps);
            out.push(Segment {
                stream: self.stream.clone(),
                session: self.session,
                rendition: o.rendition,
                audio_group: o.audio_group,
                sequence,
                container: self.container,
                init: o.init,
                data: o.data,
                duration_us: o.duration_us,
                discontinuity,
                independent: o.independent,
                start_pts_us: o.start_pts_us,
                info: TrackInfo {
                    bandwidth: *peak,
                    ..o.info
                },
                advice: self.advice.clone(),
            });
        }
        self.timeline.next_sequence += 1;
        // A publisher that drops mid-GOP leaves frames shown after the decode timeline ends
        // (B-frame reordering): the next session starts after everything this one presented,
        // or players see time go backwards across the reconnect.
        let shown_end_us = video
            .iter()
            .chain(&audio)
            .map(|t| t.shown_end_us.max(t.end_us))
            .max()
            .unwrap_or(0);
        self.timeline.next_start_ms = self.timeline.next_start_ms.max(shown_end_us.div_ceil(1000));
        Ok(())
    }
}

/// A segment of one cut before the per-stream fields are added.
struct Output {
    rendition: String,
    audio_group: bool,
    init: Option<Bytes>,
    data: Bytes,
    duration_us: u64,
    start_pts_us: u64,
    independent: bool,
    info: TrackInfo,
}

/// The name of an H.264 profile browsers do not decode (10-bit, 4:2:2, 4:4:4), if `cfg` uses one.
fn unplayable_avc_profile(cfg: &VideoConfig) -> Option<&'static str> {
    if cfg.codec != crate::VideoCodec::Avc {
        return None;
    }
    // avcC: configurationVersion, then AVCProfileIndication.
    match cfg.record.get(1)? {
        110 => Some("High 10"),
        122 => Some("High 4:2:2"),
        244 => Some("High 4:4:4 Predictive"),
        44 => Some("CAVLC 4:4:4 Intra"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
