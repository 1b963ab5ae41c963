//! `BANDWIDTH` and `AVERAGE-BANDWIDTH` of a variant stream as RFC 8216 §4.3.4.2 defines them,
//! measured from the segments the signer signs (sizes and durations, nothing decoded).
//!
//! - The *peak segment bit rate* is the largest bit rate of any run of contiguous segments whose
//!   total duration is between 0.5 and 1.5 times the target duration (one segment counts if its
//!   own duration is in that range). A 33 ms final segment alone is not such a run, so its
//!   bytes no longer make the peak (it measured 3.98 Mb/s for a 1.15 Mb/s stream).
//! - The *average segment bit rate* is all bits over all time.

use std::collections::VecDeque;

/// One segment: its duration and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub dur_us: u64,
    pub bytes: u64,
}

/// Segments remembered to form runs ending at a new one: runs are at most 1.5 target durations
/// long, and a segment of 1/40 target is already degenerate.
const RECENT: usize = 64;

fn rate(bytes: u128, dur_us: u128) -> u64 {
    u64::try_from(bytes * 8 * 1_000_000 / dur_us.max(1)).unwrap_or(u64::MAX)
}

/// The largest bit rate of the runs ending at the last of `segs` that qualify for `target_s`.
fn best_run_ending_last(segs: &[Sample], target_s: u64) -> Option<u64> {
    let target_us = u128::from(target_s.max(1)) * 1_000_000;
    let (lo, hi) = (target_us / 2, target_us * 3 / 2);
    let (mut bytes, mut dur) = (0u128, 0u128);
    let mut best = None;
    for s in segs.iter().rev() {
        bytes += u128::from(s.bytes);
        dur += u128::from(s.dur_us);
        if dur > hi {
            break;
        }
        if dur >= lo {
            best = best.max(Some(rate(bytes, dur)));
        }
    }
    best
}

/// The peak segment bit rate of `segs` (in order) for a target duration of `target_s`
/// seconds; `None` when no run qualifies (say, a single segment far shorter than the target).
pub fn peak_bit_rate(segs: &[Sample], target_s: u64) -> Option<u64> {
    (1..=segs.len())
        .filter_map(|end| best_run_ending_last(&segs[end.saturating_sub(RECENT)..end], target_s))
        .max()
}

/// Total bits over total duration; `None` for no segments.
pub fn average_bit_rate(segs: &[Sample]) -> Option<u64> {
    let bytes: u128 = segs.iter().map(|s| u128::from(s.bytes)).sum();
    let dur: u128 = segs.iter().map(|s| u128::from(s.dur_us)).sum();
    (dur > 0).then(|| rate(bytes, dur))
}

/// Running measurement of one rendition, bounded in memory: fed each segment as it is signed.
#[derive(Clone, Debug, Default)]
pub struct BandwidthMeter {
    recent: VecDeque<Sample>,
    peak: Option<u64>,
    bytes: u128,
    dur_us: u128,
}

impl BandwidthMeter {
    /// Add a segment; `target_s` is the rendition's current target duration.
    pub fn push(&mut self, s: Sample, target_s: u64) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
        self.bytes += u128::from(s.bytes);
        self.dur_us += u128::from(s.dur_us);
        let run = best_run_ending_last(self.recent.make_contiguous(), target_s);
        self.peak = self.peak.max(run);
    }

    /// `BANDWIDTH`: the peak segment bit rate so far. Until some run qualifies (the first
    /// segments of a stream shorter than half a target), the average stands in; the peak is
    /// never below the average. At least 1.
    pub fn peak(&self) -> Option<u64> {
        let avg = self.average()?;
        Some(self.peak.unwrap_or(avg).max(avg))
    }

    /// `AVERAGE-BANDWIDTH`: all bits over all time so far. At least 1.
    pub fn average(&self) -> Option<u64> {
        (self.dur_us > 0).then(|| rate(self.bytes, self.dur_us).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(dur_ms: u64, bytes: u64) -> Sample {
        Sample {
            dur_us: dur_ms * 1000,
            bytes,
        }
    }

    /// 2 s segments of a 1.15 Mb/s stream.
    fn steady(n: usize) -> Vec<Sample> {
        vec![s(2000, 287_500); n]
    }

    #[test]
    fn a_short_final_segment_does_not_make_the_peak() {
        // The measured case: a 33 ms last segment of 16.4 kB is 3.98 Mb/s on its own.
        let mut segs = steady(10);
        segs.push(s(33, 16_418));
        let one_segment_peak = segs.iter().map(|x| rate(x.bytes.into(), x.dur_us.into())).max();
        assert_eq!(one_segment_peak, Some(3_980_121));
        let peak = peak_bit_rate(&segs, 2).unwrap();
        // Its best run is 2 s + 33 ms: 1.196 Mb/s.
        assert_eq!(peak, (287_500 + 16_418) * 8 * 1_000_000 / 2_033_000);
        assert!(peak < 1_200_000, "{peak}");
        let avg = average_bit_rate(&segs).unwrap();
        assert!((1_150_000..1_160_000).contains(&avg), "{avg}");
    }

    #[test]
    fn runs_between_half_and_one_and_a_half_targets() {
        // Target 2 s: 0.4 s segments form runs of 1.2 s (3) .. 2.8 s (7); a burst of two
        // segments (0.8 s) alone is too short, but runs containing it count.
        let mut segs = vec![s(400, 50_000); 10];
        segs[5].bytes = 150_000;
        segs[6].bytes = 150_000;
        let peak = peak_bit_rate(&segs, 2).unwrap();
        // Best: the 3-segment runs holding both (1.2 s, 350 kB).
        assert_eq!(peak, 350_000 * 8 * 1_000_000 / 1_200_000);
        // One segment in range counts alone.
        assert_eq!(peak_bit_rate(&[s(1000, 1000)], 2), Some(8000));
        assert_eq!(peak_bit_rate(&[s(3000, 3000)], 2), Some(8000));
        // Out of range both ways: nothing qualifies.
        assert_eq!(peak_bit_rate(&[s(999, 1000)], 2), None);
        assert_eq!(peak_bit_rate(&[s(3001, 1000)], 2), None);
        assert_eq!(peak_bit_rate(&[], 2), None);
        assert_eq!(average_bit_rate(&[]), None);
    }

    #[test]
    fn the_meter_agrees_with_the_pure_function() {
        let mut segs = steady(5);
        segs.insert(2, s(500, 400_000));
        segs.push(s(33, 16_418));
        let mut m = BandwidthMeter::default();
        for x in &segs {
            m.push(*x, 2);
        }
        assert_eq!(m.peak(), peak_bit_rate(&segs, 2));
        assert_eq!(m.average(), average_bit_rate(&segs));
    }

    #[test]
    fn the_meter_falls_back_to_the_average_and_stays_bounded() {
        let mut m = BandwidthMeter::default();
        assert_eq!(m.peak(), None);
        m.push(s(33, 16_418), 2);
        assert_eq!(m.peak(), m.average());
        assert_eq!(m.peak(), Some(3_980_121));
        // Thousands of tiny segments: memory stays at RECENT, the numbers stay exact.
        let mut m = BandwidthMeter::default();
        for _ in 0..10_000 {
            m.push(s(10, 1250), 2);
        }
        assert_eq!(m.recent.len(), RECENT);
        assert_eq!(m.average(), Some(1_000_000));
        // 64 x 10 ms = 0.64 s < 1 s: no run qualifies, the average stands in.
        assert_eq!(m.peak(), Some(1_000_000));
        // Huge values saturate instead of overflowing.
        let mut m = BandwidthMeter::default();
        m.push(s(1, u64::MAX), 2);
        assert_eq!(m.peak(), Some(u64::MAX));
    }
}
