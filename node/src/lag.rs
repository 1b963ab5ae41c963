//! Which followed streams serve a manifest older than one this node knows exists, and since
//! when: sans-IO, driven by the replica (which knows both) and read by the HTTP origin, which
//! stops presenting the old manifest as live once it has lagged for [`STALE_AFTER`].
//!
//! Lagging for a moment is normal: a newer manifest is known as soon as it is verified, and is
//! served once every blob it lists is fetched and verified (well under a segment). Lagging for
//! long means no source delivers those blobs; the old playlist would then look live but never
//! grow, so players would stall at its end and mirrors would copy it as the live edge.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use manifest_signer::StreamId;

/// A stream that has lagged this long answers its manifest and playlists with 503.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Lagging {
    served: u64,
    newest: u64,
    since: Instant,
    reported: bool,
}

/// The lag of every followed stream that lags.
#[derive(Debug, Default)]
pub struct Lag {
    streams: HashMap<StreamId, Lagging>,
}

/// A stale stream: what is served and what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    pub served: u64,
    pub newest: u64,
    /// First time it is reported stale in this episode (log it once).
    pub first: bool,
}

impl Lag {
    /// The replica's view after a change: `Some((served, newest))` while the served manifest is
    /// older than the newest verified one, `None` once it caught up.
    pub fn note(&mut self, id: &StreamId, lag: Option<(u64, u64)>, now: Instant) {
        match lag {
            Some((served, newest)) if newest > served => {
                let e = self.streams.entry(*id).or_insert(Lagging {
                    served,
                    newest,
                    since: now,
                    reported: false,
                });
                e.served = served;
                e.newest = newest;
            }
            _ => {
                self.streams.remove(id);
            }
        }
    }

    /// Whether `id` has lagged for [`STALE_AFTER`] or more.
    pub fn stale(&mut self, id: &StreamId, now: Instant) -> Option<Stale> {
        let e = self.streams.get_mut(id)?;
        if now.duration_since(e.since) < STALE_AFTER {
            return None;
        }
        let first = !std::mem::replace(&mut e.reported, true);
        Some(Stale {
            served: e.served,
            newest: e.newest,
            first,
        })
    }

    /// Streams stale now.
    pub fn count_stale(&self, now: Instant) -> usize {
        self.streams
            .values()
            .filter(|e| now.duration_since(e.since) >= STALE_AFTER)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_stale_only_after_lagging_for_the_whole_grace_and_recovers_at_once() {
        let id = manifest_signer::StreamKey::from_seed([1; 32]).stream_id();
        let t0 = Instant::now();
        let mut lag = Lag::default();
        lag.note(&id, None, t0);
        assert_eq!(lag.stale(&id, t0 + STALE_AFTER * 2), None, "not lagging");
        lag.note(&id, Some((4, 5)), t0);
        assert_eq!(lag.stale(&id, t0 + STALE_AFTER / 2), None, "a moment's lag is normal");
        // Still lagging, further behind: the episode started at t0.
        lag.note(&id, Some((4, 9)), t0 + STALE_AFTER / 2);
        let s = lag.stale(&id, t0 + STALE_AFTER).unwrap();
        assert_eq!((s.served, s.newest, s.first), (4, 9, true));
        assert!(!lag.stale(&id, t0 + STALE_AFTER).unwrap().first, "reported once");
        assert_eq!(lag.count_stale(t0 + STALE_AFTER), 1);
        // Caught up: served again at once; a new episode starts its own grace.
        lag.note(&id, Some((9, 9)), t0 + STALE_AFTER);
        assert_eq!(lag.stale(&id, t0 + STALE_AFTER * 3), None);
        lag.note(&id, Some((9, 10)), t0 + STALE_AFTER * 3);
        assert_eq!(lag.stale(&id, t0 + STALE_AFTER * 3), None);
        assert!(lag.stale(&id, t0 + STALE_AFTER * 4).unwrap().first);
        assert_eq!(lag.count_stale(t0), 0);
    }
}
