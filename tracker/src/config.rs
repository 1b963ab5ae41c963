//! Limits and timings, with defaults sane for one node on the public internet.

use std::time::Duration;

use serde::Deserialize;

/// Every limit the tracker enforces. `[tracker.limits]` in the node's config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Largest text message accepted from a client (bytes); larger ones close the connection.
    pub max_message_bytes: usize,
    /// Most offers one announce may carry (the bittorrent-tracker client sends at most 10).
    pub max_offers: usize,
    /// Most peers an announce's offers are relayed to.
    pub max_numwant: usize,
    /// Most peers in one swarm; further peers are refused.
    pub max_peers_per_swarm: usize,
    /// Most swarms; announces for new ones are refused.
    pub max_swarms: usize,
    /// Most simultaneous connections from one IP address (loopback included).
    pub max_connections_per_ip: usize,
    /// Most info hashes one scrape may name.
    pub max_scrape_hashes: usize,
    /// Messages queued for one connection; a peer that lets its queue fill is disconnected.
    pub outbound_queue: usize,
    /// A connection with no message for this long is closed; a peer not announced for this long expires.
    pub idle_timeout_secs: u64,
    /// The `interval` clients are told to re-announce at.
    pub announce_interval_secs: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_message_bytes: 64 * 1024,
            max_offers: 10,
            max_numwant: 10,
            max_peers_per_swarm: 1000,
            max_swarms: 10_000,
            max_connections_per_ip: 64,
            max_scrape_hashes: 64,
            outbound_queue: 64,
            idle_timeout_secs: 120,
            announce_interval_secs: 30,
        }
    }
}

impl TrackerConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// Refuse settings that make the tracker useless or unbounded.
    pub fn check(&self) -> Result<(), String> {
        let nonzero = [
            ("max_message_bytes", self.max_message_bytes),
            ("max_peers_per_swarm", self.max_peers_per_swarm),
            ("max_swarms", self.max_swarms),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("outbound_queue", self.outbound_queue),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(format!("tracker.limits.{name} must be at least 1"));
            }
        }
        if self.announce_interval_secs == 0 || self.announce_interval_secs >= self.idle_timeout_secs {
            return Err("tracker.limits.announce_interval_secs must be 1 or more and below idle_timeout_secs".into());
        }
        Ok(())
    }
}
