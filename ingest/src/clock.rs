//! The stream timeline: RTMP 32-bit millisecond timestamps unwrapped, rebased on jumps and
//! kept non-negative, plus tick conversions.

use tracing::{debug, warn};

/// Forward timestamp jumps above this are rebased (ms).
const JUMP_FORWARD_MS: i64 = 3_000;
/// Backward timestamp jumps above this are rebased (ms).
const JUMP_BACKWARD_MS: i64 = 1_000;
/// Where a stream's timeline stands; carried from one publish session to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// Sequence number of the next segment.
    pub next_sequence: u64,
    /// Where the next session's first sample goes, in ms.
    pub next_start_ms: u64,
}

/// Maps RTMP 32-bit millisecond timestamps onto a continuous, non-negative timeline.
#[derive(Debug)]
pub(crate) struct Clock {
    base_ms: i64,
    last_raw: Option<u32>,
    unwrapped: i64,
    offset: i64,
    last_out: [Option<i64>; 2],
    rebases: u32,
    /// A fixed raw-to-timeline offset: no rebasing (see [`Clock::fixed`]).
    fixed: bool,
    /// How far the last `map` of a fixed clock raised its result to the floor.
    raised_ms: u32,
}

/// Track index for [`Clock::map`].
pub(crate) const VIDEO: usize = 0;
/// Track index for [`Clock::map`].
pub(crate) const AUDIO: usize = 1;
const NOMINAL_MS: [i64; 2] = [33, 21];

impl Clock {
    pub(crate) fn new(base_ms: u64) -> Self {
        Self {
            base_ms: i64::try_from(base_ms).unwrap_or(0),
            last_raw: None,
            unwrapped: 0,
            offset: 0,
            last_out: [None, None],
            rebases: 0,
            fixed: false,
            raised_ms: 0,
        }
    }

    /// A clock for input whose timestamps are already on the stream timeline up to a known
    /// `offset_ms` (an ABR rung transcoded from the source): `raw + offset_ms`, unwrapped,
    /// never below `floor_ms`, and never rebased, so the rung stays aligned with the source.
    /// How far a result was raised to the floor is [`Clock::raised_ms`].
    pub(crate) fn fixed(floor_ms: u64, offset_ms: i64) -> Self {
        Self {
            offset: offset_ms,
            fixed: true,
            ..Self::new(floor_ms)
        }
    }

    /// Maps a raw timestamp of `track` (VIDEO or AUDIO) to timeline milliseconds.
    pub(crate) fn map(&mut self, track: usize, raw: u32) -> u64 {
        let track = track.min(1);
        match self.last_raw {
            None => {
                self.unwrapped = i64::from(raw);
                if !self.fixed {
                    self.offset = self.base_ms - self.unwrapped;
                }
            }
            Some(last) => {
                // The i32 reinterpretation unwraps the 2^32 ms wrap in both directions.
                self.unwrapped += i64::from(raw.wrapping_sub(last) as i32);
            }
        }
        self.last_raw = Some(raw);
        let mut out = self.unwrapped + self.offset;
        if let Some(prev) = self.last_out[track]
            && !self.fixed
        {
            let delta = out - prev;
            if !(-JUMP_BACKWARD_MS..=JUMP_FORWARD_MS).contains(&delta) {
                let target = prev + NOMINAL_MS[track];
                self.offset += target - out;
                self.rebases = self.rebases.saturating_add(1);
                if self.rebases <= 5 {
                    warn!(track, delta, "timestamp jump, rebasing timeline");
                } else {
                    debug!(track, delta, "timestamp jump, rebasing timeline");
                }
                out = target;
            }
        }
        if self.fixed {
            self.raised_ms = u32::try_from((self.base_ms - out).max(0)).unwrap_or(u32::MAX);
        }
        let out = out.max(self.base_ms);
        self.last_out[track] = Some(out);
        u64::try_from(out).unwrap_or(0)
    }
}

impl Clock {
    /// For a fixed clock: how many ms the last [`Clock::map`] raised its result to reach the
    /// floor (0 when it did not). A rung's first frames can sit a few tens of ms before the
    /// floor (ffmpeg's B-frame decode delay, AAC priming); the segmenter keeps their
    /// presentation times exact and drops such audio instead of shifting it.
    pub(crate) fn raised_ms(&self) -> u32 {
        self.raised_ms
    }
}

pub(crate) fn ms_to_ticks(ms: u64, timescale: u32) -> u64 {
    ms.saturating_mul(u64::from(timescale)) / 1000
}

pub(crate) fn ticks_to_us(ticks: u64, timescale: u32) -> u64 {
    let t = u128::from(ticks) * 1_000_000 / u128::from(timescale.max(1));
    u64::try_from(t).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_32_bit_wrap() {
        let mut c = Clock::new(0);
        assert_eq!(c.map(VIDEO, u32::MAX - 10), 0);
        assert_eq!(c.map(AUDIO, u32::MAX - 5), 5);
        assert_eq!(c.map(VIDEO, 20), 31);
        assert_eq!(c.map(AUDIO, 25), 36);
    }

    #[test]
    fn rebases_jumps_and_never_goes_below_base() {
        let mut c = Clock::new(5_000);
        assert_eq!(c.map(VIDEO, 100), 5_000);
        assert_eq!(c.map(VIDEO, 133), 5_033);
        // Ten-minute jump forward: continues one nominal frame later.
        assert_eq!(c.map(VIDEO, 600_133), 5_066);
        assert_eq!(c.map(VIDEO, 600_166), 5_099);
        // Audio from the same encoder jumped too and stays in sync.
        assert_eq!(c.map(AUDIO, 600_150), 5_083);
        // Backwards by an hour: rebased, not negative.
        assert_eq!(c.map(VIDEO, 10), 5_132);
        // Small backwards steps pass through (the segmenter keeps DTS monotonic).
        assert_eq!(c.map(VIDEO, 0), 5_122);
    }

    #[test]
    fn fixed_offset_keeps_gaps_and_floor() {
        let mut c = Clock::fixed(4_000, 3_000);
        assert_eq!(c.map(VIDEO, 950), 4_000); // 3_950 is below the floor
        assert_eq!(c.raised_ms(), 50);
        assert_eq!(c.map(AUDIO, 1_000), 4_000);
        assert_eq!(c.raised_ms(), 0);
        assert_eq!(c.map(VIDEO, 1_033), 4_033);
        assert_eq!(c.raised_ms(), 0);
        // A gap (dropped input, ffmpeg restart) stays a gap: the rung keeps the source's clock.
        assert_eq!(c.map(VIDEO, 9_033), 12_033);
    }
}
