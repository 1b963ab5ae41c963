//! Tracker counters as plain atomics, rendered in the Prometheus text format by the node.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Reject;

#[derive(Debug, Default)]
pub struct TrackerMetrics {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) announces: AtomicU64,
    pub(crate) scrapes: AtomicU64,
    pub(crate) offers_relayed: AtomicU64,
    pub(crate) answers_relayed: AtomicU64,
    pub(crate) peers_expired: AtomicU64,
    pub(crate) slow_peers_dropped: AtomicU64,
    pub(crate) idle_closed: AtomicU64,
    pub(crate) rejected: [AtomicU64; Reject::ALL.len()],
}

impl TrackerMetrics {
    pub(crate) fn reject(&self, r: Reject) {
        self.rejected[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r as usize].load(Ordering::Relaxed)
    }

    pub fn offers_relayed(&self) -> u64 {
        self.offers_relayed.load(Ordering::Relaxed)
    }

    pub fn answers_relayed(&self) -> u64 {
        self.answers_relayed.load(Ordering::Relaxed)
    }

    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// Append the tracker's lines (`hlswarm_tracker_*`) to a text exposition.
    pub(crate) fn render(&self, o: &mut String, swarms: usize, peers: usize) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                o,
                "# HELP hlswarm_tracker_{name} {help}\n# TYPE hlswarm_tracker_{name} {kind}"
            );
            let _ = writeln!(o, "hlswarm_tracker_{name} {v}");
        };
        one(
            "connections",
            "gauge",
            "Open tracker WebSocket connections.",
            g(&self.connections_open),
        );
        one(
            "connections_total",
            "counter",
            "Tracker WebSocket connections accepted.",
            g(&self.connections_total),
        );
        one(
            "swarms",
            "gauge",
            "Swarms (info hashes) with at least one peer.",
            swarms as u64,
        );
        one("peers", "gauge", "Peers across all swarms.", peers as u64);
        one("announces_total", "counter", "Announces handled.", g(&self.announces));
        one("scrapes_total", "counter", "Scrapes handled.", g(&self.scrapes));
        one(
            "offers_relayed_total",
            "counter",
            "WebRTC offers relayed to a peer.",
            g(&self.offers_relayed),
        );
        one(
            "answers_relayed_total",
            "counter",
            "WebRTC answers relayed to a peer.",
            g(&self.answers_relayed),
        );
        one(
            "peers_expired_total",
            "counter",
            "Peers removed after the idle time.",
            g(&self.peers_expired),
        );
        one(
            "slow_peers_dropped_total",
            "counter",
            "Connections dropped because their queue was full.",
            g(&self.slow_peers_dropped),
        );
        one(
            "idle_closed_total",
            "counter",
            "Connections closed for silence.",
            g(&self.idle_closed),
        );
        o.push_str("# HELP hlswarm_tracker_rejected_total Messages or connections refused, by reason.\n");
        o.push_str("# TYPE hlswarm_tracker_rejected_total counter\n");
        for r in Reject::ALL {
            let _ = writeln!(
                o,
                "hlswarm_tracker_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                self.rejected(r)
            );
        }
    }
}
