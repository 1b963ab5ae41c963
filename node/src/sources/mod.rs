//! The HTTP sources of one followed stream (the origins and mirrors its hints and the command
//! line name), with their health: sans-IO, so the choices are tested without sockets. Used by
//! the HTTP-only mirror (`seed --no-swarm`, [`crate::seed`]) and the swarm's HTTP fallback.
//!
//! - Every usable source is polled for its manifest ([`HttpSources::pick_for_poll`]); the
//!   freshest verified manifest wins, whichever source answered first. A source whose manifest
//!   is older than one already known is *behind*: not a liar, but not asked for new blobs first.
//! - Blobs come from the freshest usable source ([`HttpSources::pick_for_blob`]); a source that
//!   does not have one is passed over for the next.
//! - A source that does not answer (timeout, connection error, 5xx, an oversize body) is backed
//!   off, exponentially from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]. A source that sends bytes that
//!   fail verification (a bad signature, a blob that does not hash to its name, a log that does
//!   not reach the signed root) is banned for `ban` (the swarm's `ban_seconds`), as a peer is.

pub mod fetch;
pub mod mirror;
pub mod report;

use std::time::{Duration, Instant};

/// Most HTTP sources kept per stream.
pub const MAX_SOURCES: usize = 8;
/// First backoff of a source that did not answer; doubled per failure in a row.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest backoff of a source that does not answer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A source this many manifests behind the freshest known is reported (once) as behind.
pub const BEHIND_SLACK: u64 = 2;

/// Why a source was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// No usable answer: connection error, timeout, an error status, an oversize body.
    Unreachable,
    /// Bytes that failed verification: the source lies (or serves corrupted files).
    Tampered(&'static str),
}

/// What a report changed, for the caller to log and count once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Nothing,
    /// Backed off this long (it did not answer).
    BackedOff(Duration),
    /// Banned this long (it sent bytes that failed verification).
    Banned(Duration),
    /// Its newest manifest is older than the freshest known (by more than [`BEHIND_SLACK`]).
    Behind {
        seq: u64,
        freshest: u64,
    },
}

/// One source and its health.
#[derive(Debug, Clone)]
pub struct Source {
    /// `http(s)://host/prefix/`, ending in `/`.
    pub base: String,
    /// Failures in a row (reset by an answer).
    pub failures: u32,
    pub backoff_until: Option<Instant>,
    pub banned_until: Option<Instant>,
    /// The newest manifest seq it served (verified).
    pub seq: Option<u64>,
    /// Reported behind (cleared when it catches up), so it is logged once.
    behind: bool,
}

impl Source {
    fn usable(&self, now: Instant) -> bool {
        self.banned_until.is_none_or(|t| t <= now) && self.backoff_until.is_none_or(|t| t <= now)
    }
}

/// The HTTP sources of one stream.
#[derive(Debug, Clone)]
pub struct HttpSources {
    sources: Vec<Source>,
    ban: Duration,
    /// The freshest manifest seq any source served.
    freshest: Option<u64>,
}

impl HttpSources {
    /// `ban`: how long a source that sent bad bytes is left alone.
    pub fn new(bases: impl IntoIterator<Item = String>, ban: Duration) -> Self {
        let mut s = HttpSources {
            sources: Vec::new(),
            ban,
            freshest: None,
        };
        for b in bases {
            s.add(b);
        }
        s
    }

    /// Add a source (`/` appended if missing); false if known already or [`MAX_SOURCES`] are.
    pub fn add(&mut self, base: String) -> bool {
        let base = if base.ends_with('/') { base } else { format!("{base}/") };
        if self.sources.len() >= MAX_SOURCES || self.sources.iter().any(|s| s.base == base) {
            return false;
        }
        self.sources.push(Source {
            base,
            failures: 0,
            backoff_until: None,
            banned_until: None,
            seq: None,
            behind: false,
        });
        true
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The freshest manifest seq any source served.
    pub fn freshest(&self) -> Option<u64> {
        self.freshest
    }

    /// Whether any source may be asked now.
    pub fn any_usable(&self, now: Instant) -> bool {
        self.sources.iter().any(|s| s.usable(now))
    }

    /// The earliest time a source becomes usable again (None: one is usable now, or none
    /// exist).
    pub fn next_usable(&self, now: Instant) -> Option<Instant> {
        if self.any_usable(now) {
            return None;
        }
        self.sources
            .iter()
            .filter_map(|s| {
                s.banned_until
                    .into_iter()
                    .chain(s.backoff_until)
                    .filter(|t| *t > now)
                    .max()
            })
            .min()
    }

    /// Every source to ask for its manifest now: all that are not banned or backed off.
    pub fn pick_for_poll(&self, now: Instant) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| s.usable(now))
            .map(|s| s.base.clone())
            .collect()
    }

    /// The source to ask for a blob that a manifest of `seq` lists (None: any), passing over
    /// `tried`: the usable source that served the freshest manifest (one that served `seq` or
    /// later holds the blob), then fewer failures, then the order given (the command line's
    /// sources before the hints', so an operator's own mirror is asked before the origin).
    /// Not the quickest: a hinted origin would answer every seeder and no mirror would ever
    /// be asked, nor a lying one found out.
    pub fn pick_for_blob(&self, now: Instant, seq: Option<u64>, tried: &[String]) -> Option<String> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.usable(now) && !tried.contains(&s.base))
            .min_by_key(|(i, s)| {
                let holds = match (seq, s.seq) {
                    (Some(want), Some(have)) => have >= want,
                    (None, _) => true,
                    (Some(_), None) => false,
                };
                (!holds, std::cmp::Reverse(s.seq), s.failures, *i)
            })
            .map(|(_, s)| s.base.clone())
    }

    fn get(&mut self, base: &str) -> Option<&mut Source> {
        self.sources.iter_mut().find(|s| s.base == base)
    }

    /// The source answered (with bytes that verified, or an honest "not here").
    pub fn report_ok(&mut self, base: &str) {
        if let Some(s) = self.get(base) {
            s.failures = 0;
            s.backoff_until = None;
        }
    }

    /// The source failed: backed off, or banned for bad bytes.
    pub fn report_bad(&mut self, base: &str, now: Instant, why: Bad) -> Change {
        let ban = self.ban;
        let Some(s) = self.get(base) else {
            return Change::Nothing;
        };
        s.failures = s.failures.saturating_add(1);
        match why {
            Bad::Unreachable => {
                let exp = s.failures.saturating_sub(1).min(16);
                let d = BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX);
                s.backoff_until = Some(now + d);
                Change::BackedOff(d)
            }
            Bad::Tampered(_) => {
                // Banned once; a second bad answer already in flight does not extend it.
                if s.banned_until.is_some_and(|t| t > now) {
                    return Change::Nothing;
                }
                s.banned_until = Some(now + ban);
                s.seq = None;
                Change::Banned(ban)
            }
        }
    }

    /// The source served a verified manifest of `seq`.
    pub fn report_manifest(&mut self, base: &str, seq: u64) -> Change {
        let freshest = self.freshest.map_or(seq, |f| f.max(seq));
        self.freshest = Some(freshest);
        let Some(s) = self.get(base) else {
            return Change::Nothing;
        };
        s.seq = Some(s.seq.map_or(seq, |old| old.max(seq)));
        let behind = freshest.saturating_sub(seq) > BEHIND_SLACK;
        let was = std::mem::replace(&mut s.behind, behind);
        if behind && !was {
            Change::Behind { seq, freshest }
        } else {
            Change::Nothing
        }
    }

    /// A manifest of `seq` is known from elsewhere (a peer, gossip): sources are behind it.
    pub fn saw_seq(&mut self, seq: u64) {
        self.freshest = Some(self.freshest.map_or(seq, |f| f.max(seq)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BAN: Duration = Duration::from_secs(600);

    fn two() -> HttpSources {
        HttpSources::new(["http://stale".to_string(), "http://origin/".to_string()], BAN)
    }

    #[test]
    fn sources_are_bounded_deduplicated_and_end_in_a_slash() {
        let mut s = HttpSources::new((0..20).map(|i| format!("http://m{i}")), BAN);
        assert_eq!(s.len(), MAX_SOURCES);
        assert!(!s.add("http://m0/".into()));
        assert!(s.sources().iter().all(|x| x.base.ends_with('/')));
    }

    #[test]
    fn every_usable_source_is_polled_and_the_freshest_serves_blobs() {
        let now = Instant::now();
        let mut s = two();
        assert_eq!(s.pick_for_poll(now), vec!["http://stale/", "http://origin/"]);
        // Before any manifest: the order given.
        assert_eq!(s.pick_for_blob(now, None, &[]).unwrap(), "http://stale/");
        assert_eq!(s.report_manifest("http://stale/", 2), Change::Nothing);
        assert_eq!(
            s.report_manifest("http://origin/", 30),
            Change::Nothing,
            "the fresh one is not behind"
        );
        assert_eq!(s.freshest(), Some(30));
        // Polled again, the stale one is reported behind, once.
        assert_eq!(
            s.report_manifest("http://stale/", 2),
            Change::Behind { seq: 2, freshest: 30 }
        );
        assert_eq!(s.report_manifest("http://stale/", 2), Change::Nothing);
        // A blob of manifest 30 (or any) comes from the origin, though the stale one is first.
        s.report_ok("http://stale/");
        s.report_ok("http://origin/");
        assert_eq!(s.pick_for_blob(now, Some(30), &[]).unwrap(), "http://origin/");
        assert_eq!(s.pick_for_blob(now, None, &[]).unwrap(), "http://origin/");
        // Not there: the next one.
        assert_eq!(
            s.pick_for_blob(now, Some(30), &["http://origin/".into()]).unwrap(),
            "http://stale/"
        );
        assert_eq!(
            s.pick_for_blob(now, None, &["http://origin/".into(), "http://stale/".into()]),
            None
        );
        // Caught up: behind is cleared, and can be reported again later.
        assert_eq!(s.report_manifest("http://stale/", 30), Change::Nothing);
        assert_eq!(
            s.report_manifest("http://origin/", 40),
            Change::Nothing,
            "within the slack of the freshest"
        );
        assert_eq!(
            s.report_manifest("http://stale/", 30),
            Change::Behind { seq: 30, freshest: 40 }
        );
    }

    #[test]
    fn a_source_that_does_not_answer_backs_off_exponentially_and_recovers() {
        let t0 = Instant::now();
        let mut s = two();
        assert_eq!(
            s.report_bad("http://stale/", t0, Bad::Unreachable),
            Change::BackedOff(BACKOFF_MIN)
        );
        assert_eq!(s.pick_for_poll(t0), vec!["http://origin/"]);
        assert_eq!(
            s.report_bad("http://stale/", t0, Bad::Unreachable),
            Change::BackedOff(BACKOFF_MIN * 2)
        );
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            if let Change::BackedOff(d) = s.report_bad("http://stale/", t0, Bad::Unreachable) {
                last = d;
            }
        }
        assert_eq!(last, BACKOFF_MAX, "capped");
        assert_eq!(s.pick_for_blob(t0, None, &[]).unwrap(), "http://origin/");
        let later = t0 + BACKOFF_MAX;
        assert_eq!(s.pick_for_poll(later).len(), 2, "asked again after the backoff");
        s.report_ok("http://stale/");
        assert_eq!(s.sources()[0].failures, 0);
        assert_eq!(
            s.report_bad("http://stale/", later, Bad::Unreachable),
            Change::BackedOff(BACKOFF_MIN),
            "an answer resets the backoff"
        );
    }

    #[test]
    fn a_source_that_sends_bad_bytes_is_banned_and_the_next_is_used() {
        let t0 = Instant::now();
        let mut s = two();
        s.report_manifest("http://stale/", 30);
        s.report_manifest("http://origin/", 30);
        assert_eq!(s.pick_for_blob(t0, Some(30), &[]).unwrap(), "http://stale/");
        assert_eq!(
            s.report_bad("http://stale/", t0, Bad::Tampered("hash")),
            Change::Banned(BAN)
        );
        // A second bad answer already in flight is not a second ban.
        assert_eq!(
            s.report_bad("http://stale/", t0, Bad::Tampered("hash")),
            Change::Nothing
        );
        assert_eq!(s.pick_for_blob(t0, Some(30), &[]).unwrap(), "http://origin/");
        assert_eq!(s.pick_for_poll(t0), vec!["http://origin/"]);
        // Everyone banned or backed off: nothing to ask until the earliest comes back.
        s.report_bad("http://origin/", t0, Bad::Unreachable);
        assert!(!s.any_usable(t0));
        assert_eq!(s.pick_for_blob(t0, None, &[]), None);
        assert_eq!(s.next_usable(t0), Some(t0 + BACKOFF_MIN));
        // The ban ends after `ban`; the source must serve a manifest again to be preferred.
        assert!(s.pick_for_poll(t0 + BAN).contains(&"http://stale/".to_string()));
        assert_eq!(s.sources()[0].seq, None);
        // Unknown sources are ignored.
        assert_eq!(s.report_bad("http://x/", t0, Bad::Unreachable), Change::Nothing);
        assert_eq!(s.report_manifest("http://x/", 99), Change::Nothing);
    }
}
