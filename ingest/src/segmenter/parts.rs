//! The parts of the segment in progress: when a part closes, and the CMAF chunks made so far.
//! An fMP4 segment is always built of chunks: one per part with a part target, one in all
//! without. MPEG-TS has none.

use bytes::{Bytes, BytesMut};

use super::Segmenter;
use super::mux::Track;
use crate::clock::ticks_to_us;
use crate::fmp4::VIDEO_TIMESCALE;
use crate::{AUDIO_RENDITION, Part};

/// A part never lasts longer than this times the target (a late frame of a variable frame
/// rate source closes it early instead).
const PART_CEILING_PERCENT: u64 = 110;

/// Video and audio, as indices into [`Chunks`]' arrays.
const V: usize = 0;
const A: usize = 1;

/// The chunk state of the segment in progress.
#[derive(Debug, Default)]
pub(super) struct Chunks {
    /// Part target, microseconds; `None`: one chunk per segment and no parts reported.
    target_us: Option<u64>,
    /// First sample of the part in progress, per track, as an index into the pending samples.
    from: [usize; 2],
    /// Index of the next part, per track.
    index: [u16; 2],
    /// The segment's chunks so far, per track.
    done: [Vec<Bytes>; 2],
    /// `mfhd` sequence number of the next chunk, per track (from 1, +1 per chunk).
    fragment: [u32; 2],
}

impl Chunks {
    pub fn new(target_us: Option<u64>) -> Self {
        Chunks {
            target_us,
            fragment: [1, 1],
            ..Chunks::default()
        }
    }

    /// Whether the part in progress closes before a sample `elapsed_us` after its start, the
    /// samples being about `frame_us` long: at the first sample past the target less half a
    /// sample (so that parts straddle the target), and before the part would pass 1.1 times
    /// the target.
    pub fn due(&self, elapsed_us: u64, frame_us: u64) -> bool {
        self.target_us.is_some_and(|target| {
            elapsed_us + frame_us / 2 >= target || elapsed_us + frame_us > target * PART_CEILING_PERCENT / 100
        })
    }

    /// The video and the audio bytes of the segment being cut: their chunks, concatenated; the
    /// chunk state starts over for the next segment.
    pub fn take_all(&mut self) -> (Bytes, Bytes) {
        (self.take(V), self.take(A))
    }

    /// The segment's bytes for a track: its chunks, concatenated.
    fn take(&mut self, track: usize) -> Bytes {
        self.from[track] = 0;
        self.index[track] = 0;
        let chunks = std::mem::take(&mut self.done[track]);
        if chunks.len() == 1 {
            return chunks.into_iter().next().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        for c in chunks {
            out.extend_from_slice(&c);
        }
        out.freeze()
    }
}

impl Segmenter {
    /// Closes the part in progress: the video samples since it began, and the audio samples
    /// before `end_video` (the decode time of the video sample that begins the next part; all
    /// of them when `None`). Reports each as a [`Part`] when parts are on. Returns the index
    /// of the first audio sample left for the next part.
    pub(super) fn close_part(&mut self, end_video: Option<u64>) -> usize {
        let Some(layout) = self.layout.as_ref() else {
            return 0;
        };
        if layout.ts.is_some() {
            return 0;
        }
        let rate = layout.audio.as_ref().map_or(48_000, |a| a.sample_rate);
        let c = &mut self.chunks;
        let audio_to = match end_video {
            Some(end) if !self.video.is_empty() => {
                let end_us = ticks_to_us(end, VIDEO_TIMESCALE);
                self.audio[c.from[A]..]
                    .iter()
                    .position(|s| ticks_to_us(s.ticks, rate) >= end_us)
                    .map_or(self.audio.len(), |i| c.from[A] + i)
            }
            _ => self.audio.len(),
        };
        let video = Track::video(
            self.video[c.from[V]..].to_vec(),
            end_video,
            &mut self.last_video_duration,
        );
        let audio = Track::audio(self.audio[c.from[A]..audio_to].to_vec(), rate);
        c.from = [self.video.len(), audio_to];
        let grouped = layout.video.is_some();
        let tracks = [
            (V, video, self.rendition.clone(), false, layout.init.clone()),
            (
                A,
                audio,
                if grouped {
                    AUDIO_RENDITION.to_owned()
                } else {
                    self.rendition.clone()
                },
                grouped,
                if grouped {
                    layout.audio_init.clone()
                } else {
                    layout.init.clone()
                },
            ),
        ];
        for (t, track, rendition, audio_group, init) in tracks {
            let Some(track) = track else { continue };
            let data = track.chunk(c.fragment[t], c.done[t].is_empty());
            c.fragment[t] = c.fragment[t].wrapping_add(1).max(1);
            c.done[t].push(data.clone());
            if c.target_us.is_some() {
                self.parts.push(Part {
                    stream: self.stream.clone(),
                    session: self.session,
                    rendition,
                    audio_group,
                    sequence: self.timeline.next_sequence,
                    index: c.index[t],
                    init,
                    data,
                    duration_us: track.duration_us(),
                    independent: track.independent(),
                    discontinuity: self.discontinuity,
                    start_pts_us: if t == V { track.first_pts_us } else { track.start_us },
                    received: None,
                });
            }
            c.index[t] = c.index[t].saturating_add(1);
        }
        audio_to
    }

    /// Closes the part in progress if a video sample at `ticks` would make it too long.
    pub(super) fn video_part_due(&mut self, ticks: u64) {
        let Some(first) = self.video.get(self.chunks.from[V]) else {
            return;
        };
        let elapsed = ticks_to_us(ticks.saturating_sub(first.ticks), VIDEO_TIMESCALE);
        let frame = ticks_to_us(self.last_video_duration, VIDEO_TIMESCALE);
        if self.chunks.due(elapsed, frame) {
            self.close_part(Some(ticks));
        }
    }

    /// As [`Segmenter::video_part_due`], for an audio-only stream's sample at `ticks`.
    pub(super) fn audio_part_due(&mut self, ticks: u64, rate: u32) {
        let Some(first) = self.audio.get(self.chunks.from[A]) else {
            return;
        };
        let elapsed = ticks_to_us(ticks.saturating_sub(first.ticks), rate);
        let frame = ticks_to_us(super::AAC_FRAME, rate);
        if self.chunks.due(elapsed, frame) {
            self.close_part(None);
        }
    }

    /// The parts completed since the last call, in order: each comes before its segment.
    pub(crate) fn take_parts(&mut self) -> Vec<Part> {
        std::mem::take(&mut self.parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_straddle_the_target_and_never_pass_the_ceiling() {
        let c = Chunks::new(Some(200_000));
        // 30 fps: the 7th frame (at 200 ms) opens the next part; at 166.7 ms it does not.
        assert!(!c.due(166_667, 33_333));
        assert!(c.due(200_000, 33_333));
        // Millisecond timestamps: 167 ms + 33 ms stays in, 200 ms closes.
        assert!(!c.due(167_000, 33_000));
        // 24 fps: five frames (208 ms) rather than four (167 ms).
        assert!(!c.due(166_667, 41_667));
        assert!(c.due(208_333, 41_667));
        // A 100 ms hole in a variable frame rate source: closed before 220 ms.
        assert!(c.due(150_000, 100_000));
        assert!(!Chunks::new(None).due(10_000_000, 33_333));
    }
}
