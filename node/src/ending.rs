//! When the node signs the end of its stream (`EXT-X-ENDLIST`). Sans-IO: the signer loop in
//! run.rs feeds it ingest events and the time, and arms one timer at [`EndPolicy::deadline`].
//!
//! RFC 8216 §6.2.1 lets a server append to a live playlist but never take the end marker back,
//! and players stop at it. So the end is signed only when the broadcast really ended:
//! - the publisher said so (`Finished`: OBS "Stop Streaming", ffmpeg's normal exit): at once;
//! - the connection dropped (`Disconnected`): after the grace period, unless a publisher comes
//!   back first (OBS reconnects by itself within seconds); its segments then continue the
//!   playlist after a discontinuity;
//! - another connection took the key over (`TakenOver`): never, the stream goes on;
//! - the node is stopping (`Shutdown`): never, the node restarts and continues. A node that
//!   starts with a stored, unended stream gives the publisher the grace period to return.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ingest::EndReason;

/// What the signer loop must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to sign.
    Wait,
    /// Sign the end of the stream now.
    End(EndCause),
}

/// Why the end is signed (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The publisher ended the broadcast.
    Finished,
    /// No publisher came back within the grace period.
    GraceExpired,
}

/// The end-of-stream decision for one stream.
#[derive(Debug)]
pub struct EndPolicy {
    grace: Duration,
    /// Publish sessions that started and have not ended.
    live: HashSet<u64>,
    /// When the end is due unless a publisher arrives first.
    deadline: Option<Instant>,
}

impl EndPolicy {
    /// `stored_open`: the stream on disk has segments and is not ended (a restart after a crash
    /// or a shutdown mid-broadcast): it ends after `grace` unless a publisher comes.
    pub fn new(grace: Duration, stored_open: bool, now: Instant) -> Self {
        EndPolicy {
            grace,
            live: HashSet::new(),
            deadline: stored_open.then(|| now + grace),
        }
    }

    /// When the signer loop must call [`EndPolicy::on_deadline`].
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A publisher started: whatever was pending is cancelled, the stream goes on.
    pub fn on_publishing(&mut self, session: u64) {
        self.live.insert(session);
        self.deadline = None;
    }

    /// A publish session ended.
    pub fn on_unpublished(&mut self, session: u64, reason: EndReason, now: Instant) -> Action {
        self.live.remove(&session);
        if !self.live.is_empty() {
            // Another publisher (a takeover) carries the stream on.
            return Action::Wait;
        }
        match reason {
            EndReason::Finished => {
                self.deadline = None;
                Action::End(EndCause::Finished)
            }
            EndReason::Disconnected => {
                self.deadline = Some(now + self.grace);
                Action::Wait
            }
            // The taking-over session's Publishing is on its way; a shutting-down node signs
            // nothing more (after a restart, `new` gives the publisher the grace period).
            EndReason::TakenOver | EndReason::Shutdown => Action::Wait,
        }
    }

    /// The timer fired (or the loop woke up late): end if the deadline has passed.
    pub fn on_deadline(&mut self, now: Instant) -> Action {
        match self.deadline {
            Some(d) if now >= d && self.live.is_empty() => {
                self.deadline = None;
                Action::End(EndCause::GraceExpired)
            }
            _ => Action::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn finished_ends_at_once() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        assert_eq!(
            p.on_unpublished(1, EndReason::Finished, t),
            Action::End(EndCause::Finished)
        );
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn disconnect_ends_only_after_the_grace() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        assert_eq!(p.on_unpublished(1, EndReason::Disconnected, t), Action::Wait);
        assert_eq!(p.deadline(), Some(t + GRACE));
        assert_eq!(p.on_deadline(t + GRACE - Duration::from_millis(1)), Action::Wait);
        assert_eq!(p.on_deadline(t + GRACE), Action::End(EndCause::GraceExpired));
        // Signed once: a late wake-up does not end it again.
        assert_eq!(p.deadline(), None);
        assert_eq!(p.on_deadline(t + GRACE * 2), Action::Wait);
    }

    #[test]
    fn a_publisher_back_within_the_grace_cancels_the_end() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        p.on_unpublished(1, EndReason::Disconnected, t);
        p.on_publishing(2);
        assert_eq!(p.deadline(), None);
        assert_eq!(p.on_deadline(t + GRACE), Action::Wait);
        // And when that one drops too, a fresh grace starts from its drop.
        let later = t + Duration::from_secs(100);
        p.on_unpublished(2, EndReason::Disconnected, later);
        assert_eq!(p.deadline(), Some(later + GRACE));
    }

    #[test]
    fn takeover_never_ends_in_either_order() {
        let t = Instant::now();
        // New session announced before the old one is closed.
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        p.on_publishing(2);
        assert_eq!(p.on_unpublished(1, EndReason::TakenOver, t), Action::Wait);
        assert_eq!(p.deadline(), None);
        // Old session closed first.
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        assert_eq!(p.on_unpublished(1, EndReason::TakenOver, t), Action::Wait);
        assert_eq!(p.deadline(), None);
        p.on_publishing(2);
        assert_eq!(p.on_deadline(t + GRACE), Action::Wait);
    }

    #[test]
    fn an_old_session_finishing_does_not_end_the_live_one() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        p.on_publishing(2);
        assert_eq!(p.on_unpublished(1, EndReason::Finished, t), Action::Wait);
        assert_eq!(
            p.on_unpublished(2, EndReason::Finished, t),
            Action::End(EndCause::Finished)
        );
    }

    #[test]
    fn shutdown_signs_nothing() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, false, t);
        p.on_publishing(1);
        assert_eq!(p.on_unpublished(1, EndReason::Shutdown, t), Action::Wait);
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn a_restart_with_an_open_stream_ends_it_unless_a_publisher_comes() {
        let t = Instant::now();
        let mut p = EndPolicy::new(GRACE, true, t);
        assert_eq!(p.deadline(), Some(t + GRACE));
        assert_eq!(p.on_deadline(t + GRACE), Action::End(EndCause::GraceExpired));

        let mut p = EndPolicy::new(GRACE, true, t);
        p.on_publishing(7);
        assert_eq!(p.on_deadline(t + GRACE), Action::Wait);

        let p = EndPolicy::new(GRACE, false, t);
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn zero_grace_ends_a_dropped_stream_at_the_next_wake_up() {
        let t = Instant::now();
        let mut p = EndPolicy::new(Duration::ZERO, false, t);
        p.on_publishing(1);
        assert_eq!(p.on_unpublished(1, EndReason::Disconnected, t), Action::Wait);
        assert_eq!(p.on_deadline(t), Action::End(EndCause::GraceExpired));
    }
}
