//! When `hlswarm sign --watch` ends a stream whose packager never says so. nginx-rtmp writes
//! no `EXT-X-ENDLIST`: without this its streams would stay live for ever. Sans-IO: the watcher
//! tells it what it signed and asks it when to wake up.

use std::time::{Duration, Instant};

/// Ends an open stream after `idle` with no new segment.
#[derive(Debug, Clone)]
pub struct IdleEnd {
    idle: Option<Duration>,
    last_new: Option<Instant>,
}

impl IdleEnd {
    /// `idle`: `None` never ends a stream for idleness. `open`: the stored stream is live (a
    /// restart): the idle time runs from `now`.
    pub fn new(idle: Option<Duration>, open: bool, now: Instant) -> Self {
        IdleEnd {
            idle,
            last_new: open.then_some(now),
        }
    }

    /// A manifest was signed at `now`: `ended` says whether it ended the stream.
    pub fn on_signed(&mut self, ended: bool, now: Instant) {
        self.last_new = (!ended).then_some(now);
    }

    /// When the stream ends unless a segment comes first.
    pub fn deadline(&self) -> Option<Instant> {
        Some(self.last_new? + self.idle?)
    }

    /// True when the stream must be ended now.
    pub fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn ends_after_the_idle_time_since_the_last_segment() {
        let t = Instant::now();
        let mut e = IdleEnd::new(Some(IDLE), false, t);
        assert!(!e.due(t + IDLE * 10), "nothing signed, nothing to end");
        e.on_signed(false, t);
        let later = t + Duration::from_secs(20);
        e.on_signed(false, later);
        assert!(!e.due(t + IDLE));
        assert_eq!(e.deadline(), Some(later + IDLE));
        assert!(e.due(later + IDLE));
        // Ended (by us or by the packager's ENDLIST): nothing more to end.
        e.on_signed(true, later + IDLE);
        assert_eq!(e.deadline(), None);
        // A new segment reopens it, and the clock runs again.
        e.on_signed(false, later + IDLE * 2);
        assert_eq!(e.deadline(), Some(later + IDLE * 3));
    }

    #[test]
    fn a_restart_with_an_open_stream_starts_the_clock_and_none_disables() {
        let t = Instant::now();
        assert!(IdleEnd::new(Some(IDLE), true, t).due(t + IDLE));
        assert!(!IdleEnd::new(Some(IDLE), false, t).due(t + IDLE));
        let mut off = IdleEnd::new(None, true, t);
        off.on_signed(false, t);
        assert_eq!(off.deadline(), None);
    }
}
