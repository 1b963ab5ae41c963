//! A fixed-bucket latency histogram in the Prometheus text format: atomics only, so observing
//! costs a few relaxed adds on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, microseconds (0.5 ms to 1 s), then +Inf.
const BOUNDS_US: [u64; 16] = [
    500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 50_000, 75_000, 100_000, 200_000, 500_000,
    1_000_000,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(BOUNDS_US.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `name` in seconds, as a Prometheus histogram with `help`.
    pub fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match BOUNDS_US.get(i) {
                Some(b) => {
                    let _ = writeln!(o, "{name}_bucket{{le=\"{}\"}} {cumulative}", *b as f64 / 1e6);
                }
                None => {
                    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let h = Histogram::default();
        for ms in [0, 1, 4, 4, 40, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut o = String::new();
        h.render(&mut o, "x_seconds", "test");
        assert!(o.contains("x_seconds_bucket{le=\"0.001\"} 2\n"), "{o}");
        assert!(o.contains("x_seconds_bucket{le=\"0.005\"} 4\n"), "{o}");
        assert!(o.contains("x_seconds_bucket{le=\"0.05\"} 5\n"), "{o}");
        assert!(
            o.contains("x_seconds_bucket{le=\"+Inf\"} 6\nx_seconds_sum 5.049\nx_seconds_count 6\n"),
            "{o}"
        );
    }
}
