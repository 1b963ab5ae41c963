//! How busy the whole machine is (all cores, from /proc/stat), sampled in the background, so
//! a delay can be read against the load other jobs put on a shared machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// (time, busy fraction 0..1 over the interval that ended then).
pub type Samples = Arc<Mutex<Vec<(Instant, f64)>>>;

pub struct LoadSampler {
    pub samples: Samples,
    stop: Arc<AtomicBool>,
}

fn read() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().take(8).sum();
    // idle + iowait
    let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

impl LoadSampler {
    pub fn start(every: Duration) -> Self {
        let samples: Samples = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&samples), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut last = read();
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let now = read();
                if let (Some((t0, i0)), Some((t1, i1))) = (last, now)
                    && t1 > t0
                {
                    let busy = 1.0 - (i1 - i0) as f64 / (t1 - t0) as f64;
                    s.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), busy));
                }
                last = now;
            }
        });
        Self { samples, stop }
    }

    /// Busiest sample in `[from, to]` (the sample ending just after `to` included).
    pub fn max_between(&self, from: Instant, to: Instant) -> Option<f64> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Option<f64> = None;
        let mut after_taken = false;
        for &(t, b) in s.iter() {
            if t >= from && (t <= to || !after_taken) {
                if t > to {
                    after_taken = true;
                }
                out = Some(out.map_or(b, |o| o.max(b)));
            }
        }
        out
    }

    pub fn mean(&self) -> Option<f64> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        (!s.is_empty()).then(|| s.iter().map(|&(_, b)| b).sum::<f64>() / s.len() as f64)
    }
}

impl Drop for LoadSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
