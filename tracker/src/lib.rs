//! WebTorrent-compatible tracker, in three layers that know less the lower they are:
//!
//! - [`protocol`]: serde types for every message in and out, and the 20-byte "binary string" codec.
//! - [`Tracker`]: the transport-agnostic state machine. Swarms of peers, offers relayed to random
//!   other peers, answers relayed to `to_peer_id`, scrape, expiry, limits and metrics. Each
//!   connection has one bounded outbound queue; a peer whose queue is full is dropped and never
//!   blocks the others.
//! - [`socket`]: drives one connection over any WebSocket that implements [`socket::WsSocket`]
//!   (the node adapts axum's; tests use in-memory channels), with the idle timeout and the
//!   message-size limit.
//!
//! No HTTP or WebSocket library is a dependency: the node serves `/tracker` embedded and
//! `hlswarm tracker` standalone with the same axum glue.

mod config;
mod metrics;
pub mod protocol;
pub mod socket;
mod state;

pub use config::TrackerConfig;
pub use metrics::TrackerMetrics;
pub use state::{Connection, Tracker};

/// Why the tracker refused a message or a connection. The `Display` text is the
/// `failure reason` sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("message too large")]
    TooLarge,
    #[error("malformed message")]
    Malformed,
    #[error("binary messages are not supported")]
    Binary,
    #[error("too many offers")]
    TooManyOffers,
    #[error("swarm is full")]
    SwarmFull,
    #[error("too many swarms")]
    TooManySwarms,
    #[error("too many connections from this address")]
    TooManyConnections,
    #[error("peer_id is in use by another connection")]
    PeerIdInUse,
    #[error("answer needs to_peer_id and offer_id")]
    BadAnswer,
    #[error("answering peer has not announced in this swarm")]
    NotInSwarm,
    #[error("no peer with that to_peer_id in the swarm")]
    UnknownPeer,
    #[error("too many info hashes in scrape")]
    TooManyHashes,
}

impl Reject {
    pub const ALL: [Reject; 12] = [
        Reject::TooLarge,
        Reject::Malformed,
        Reject::Binary,
        Reject::TooManyOffers,
        Reject::SwarmFull,
        Reject::TooManySwarms,
        Reject::TooManyConnections,
        Reject::PeerIdInUse,
        Reject::BadAnswer,
        Reject::NotInSwarm,
        Reject::UnknownPeer,
        Reject::TooManyHashes,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::Malformed => "malformed",
            Reject::Binary => "binary",
            Reject::TooManyOffers => "too_many_offers",
            Reject::SwarmFull => "swarm_full",
            Reject::TooManySwarms => "too_many_swarms",
            Reject::TooManyConnections => "too_many_connections",
            Reject::PeerIdInUse => "peer_id_in_use",
            Reject::BadAnswer => "bad_answer",
            Reject::NotInSwarm => "not_in_swarm",
            Reject::UnknownPeer => "unknown_peer",
            Reject::TooManyHashes => "too_many_hashes",
        }
    }
}

/// The crate's error type.
pub type Error = Reject;
pub type Result<T> = std::result::Result<T, Error>;
