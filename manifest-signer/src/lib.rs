//! hlswarm's signed protocol (docs/PROTOCOL.md): stream keys, BLAKE3 content addresses,
//! canonical JSON, the signed MANIFEST_ROOT and STREAM_ANNOUNCE, the Merkle log with its
//! proofs, deterministic playlists, the on-disk stream store, the signer and the watcher that
//! signs any packager's HLS output.
//!
//! Knows nothing about HTTP, libp2p or MoQ.

pub mod bandwidth;
pub mod canonical;
pub mod chain;
mod error;
mod hash;
pub mod idle_end;
mod keys;
pub mod merkle;
pub mod objects;
pub mod part;
pub mod part_signer;
pub mod playlist;
pub mod playlist_ll;
pub mod signer;
pub mod store;
pub mod vectors;
pub mod verify;
pub mod watcher;

pub use chain::{AnnounceSlot, ManifestChain};
pub use error::{Error, Result};
pub use hash::Hash;
pub use keys::{StreamId, StreamKey};
pub use objects::{
    AnnounceRendition, BlobRef, Container, Hints, LogHead, ManifestRoot, Rendition, RenditionKind, SegmentRef, Signed,
    SignedObject, StreamAnnounce,
};

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
