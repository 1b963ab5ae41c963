//! One cut's samples into segment bytes: the duration of every sample, each track's span on
//! the timeline, and the container. fMP4 is CMAF with one track per segment: the video and
//! the audio of a stream are separate renditions. MPEG-TS muxes both into one segment.

use bytes::Bytes;

use super::{AAC_FRAME, Sample};
use crate::Result;
use crate::clock::ticks_to_us;
use crate::fmp4::{self, RunSample, TrackRun, VIDEO_TIMESCALE};
use crate::ts::{TsFrame, TsMuxer};

/// A track's samples with their durations, and where they sit on the timeline.
pub(super) struct Track {
    pub samples: Vec<Sample>,
    pub run: Vec<RunSample>,
    /// Timescale of the sample times (90 kHz video, the sample rate for audio).
    pub timescale: u32,
    /// First decode time and end of the last sample, microseconds.
    pub start_us: u64,
    pub end_us: u64,
    /// Earliest presentation time, microseconds.
    pub first_pts_us: u64,
    /// End of the last presented sample, microseconds (after B-frame reordering).
    pub shown_end_us: u64,
}

impl Track {
    /// The video samples of a cut. `end` is the decode time of the sample that starts the next
    /// segment (the last sample lasts until then); without it the last sample lasts
    /// `last_duration`, which is updated to the newest sample's duration.
    pub fn video(samples: Vec<Sample>, end: Option<u64>, last_duration: &mut u64) -> Option<Track> {
        let mut run = Vec::with_capacity(samples.len());
        for (i, s) in samples.iter().enumerate() {
            let duration = match (samples.get(i + 1), end) {
                (Some(next), _) => next.ticks - s.ticks,
                (None, Some(end)) if end > s.ticks => end - s.ticks,
                (None, _) => *last_duration,
            };
            *last_duration = duration.clamp(1, u64::from(VIDEO_TIMESCALE));
            run.push(RunSample {
                duration: u32::try_from(duration).unwrap_or(u32::MAX),
                cts: s.cts,
                keyframe: s.keyframe,
                data: s.data.clone(),
            });
        }
        Self::new(samples, run, VIDEO_TIMESCALE)
    }

    /// The audio samples of a cut: each lasts until the next, the last one AAC frame.
    pub fn audio(samples: Vec<Sample>, rate: u32) -> Option<Track> {
        let run = samples
            .iter()
            .enumerate()
            .map(|(i, s)| RunSample {
                duration: samples
                    .get(i + 1)
                    .map_or(AAC_FRAME, |n| n.ticks.saturating_sub(s.ticks).max(1)) as u32,
                cts: 0,
                keyframe: true,
                data: s.data.clone(),
            })
            .collect();
        Self::new(samples, run, rate)
    }

    fn new(samples: Vec<Sample>, run: Vec<RunSample>, timescale: u32) -> Option<Track> {
        let (first, last) = (samples.first()?, samples.last()?);
        let us = |ticks: u64| ticks_to_us(ticks, timescale);
        let pts = |s: &Sample| (s.ticks as i64 + i64::from(s.cts)).max(0) as u64;
        let last_duration = run.last().map_or(0, |r| u64::from(r.duration));
        let shown_end = samples
            .iter()
            .zip(&run)
            .map(|(s, r)| us(pts(s) + u64::from(r.duration)))
            .max()
            .unwrap_or(0);
        Some(Track {
            start_us: us(first.ticks),
            end_us: us(last.ticks + last_duration),
            first_pts_us: samples.iter().map(|s| us(pts(s))).min().unwrap_or(0),
            shown_end_us: shown_end,
            samples,
            run,
            timescale,
        })
    }

    pub fn duration_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }

    /// Whether a player can start decoding at the track's first sample.
    pub fn independent(&self) -> bool {
        self.samples.first().is_none_or(|s| s.keyframe)
    }

    /// Frames per 1000 s over the track's span.
    pub fn frame_rate_milli(&self) -> u32 {
        let rate = (self.samples.len() as u64)
            .saturating_mul(1_000_000_000)
            .checked_div(self.duration_us())
            .unwrap_or(0);
        u32::try_from(rate).unwrap_or(0)
    }

    /// A CMAF chunk (one moof with one traf, and its mdat) of this track alone, after a styp
    /// when it opens a segment; the track's init segment holds it as track 1.
    pub fn chunk(&self, fragment: u32, opens_segment: bool) -> Bytes {
        fmp4::fragment(
            fragment,
            &[TrackRun {
                track_id: 1,
                base_decode_time: self.samples.first().map_or(0, |s| s.ticks),
                samples: &self.run,
            }],
            opens_segment,
        )
    }
}

/// An MPEG-TS segment of both tracks (PAT/PMT first, 90 kHz timestamps).
pub(super) fn ts(ts: &mut TsMuxer, video: Option<&Track>, audio: Option<&Track>) -> Result<Bytes> {
    let vf: Vec<TsFrame<'_>> = video
        .iter()
        .flat_map(|t| &t.samples)
        .map(|s| TsFrame {
            dts: s.ticks,
            pts: (s.ticks as i64 + i64::from(s.cts)).max(0) as u64,
            keyframe: s.keyframe,
            data: &s.data,
        })
        .collect();
    let af: Vec<TsFrame<'_>> = audio
        .iter()
        .flat_map(|t| t.samples.iter().map(move |s| (t.timescale, s)))
        .map(|(rate, s)| {
            let t = s.ticks.saturating_mul(90_000) / u64::from(rate.max(1));
            TsFrame {
                dts: t,
                pts: t,
                keyframe: true,
                data: &s.data,
            }
        })
        .collect();
    ts.segment(&vf, &af)
}
