//! Segments a follower already holds as the LL-HLS parts it relayed: when a manifest lists one,
//! its parts' concatenation is offered to the replica (which checks the hash as for any fetched
//! blob) instead of downloading the segment again. A segment whose last parts are still being
//! fetched waits for them (at most the relay's fetch timeout) rather than racing them with a
//! whole-segment download.

use std::time::Instant;

use bytes::Bytes;
use manifest_signer::{Hash, ManifestRoot, Signed, StreamId};

use super::parts::FETCH_TIMEOUT;
use super::{Internal, Node};
use crate::metrics::SwarmMetrics;
use crate::replica::Wanted;

/// A wanted segment waiting for the parts still in flight.
#[derive(Debug)]
pub(super) struct Awaited {
    stream: StreamId,
    rendition: String,
    seq: u64,
    hash: Hash,
    size: u64,
    since: Instant,
}

impl Node {
    /// The wanted segments of a new manifest that are (or will be) stored from parts: each
    /// returned hash is not to be scheduled for a fetch unless that fails.
    pub(super) fn assemble_from_parts(&mut self, stream: StreamId, wire: &[u8], wanted: &[Wanted]) -> Vec<Hash> {
        let Ok(m) = Signed::<ManifestRoot>::from_wire(wire) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let now = Instant::now();
        for r in m.body.renditions.iter().filter(|r| r.part_target_us.is_some()) {
            for s in r.segments.iter().filter(|s| wanted.iter().any(|w| w.hash == s.hash)) {
                let a = Awaited {
                    stream,
                    rendition: r.name.clone(),
                    seq: s.seq,
                    hash: s.hash,
                    size: s.size,
                    since: now,
                };
                if let Some(bytes) = self.parts_of(&a) {
                    out.push(s.hash);
                    self.offer_assembled(stream, s.hash, bytes);
                } else if self.relay.pending_in(&stream, &r.name, s.seq) && self.awaiting.len() < MAX_AWAITED {
                    out.push(s.hash);
                    self.awaiting.push(a);
                }
            }
        }
        out
    }

    /// After a part is stored, and on every tick: segments whose parts are all in now are
    /// stored; those whose parts will not come (or took too long) are fetched after all.
    pub(super) fn retry_awaited(&mut self) {
        if self.awaiting.is_empty() {
            return;
        }
        let now = Instant::now();
        for a in std::mem::take(&mut self.awaiting) {
            if let Some(bytes) = self.parts_of(&a) {
                self.offer_assembled(a.stream, a.hash, bytes);
            } else if !self.relay.pending_in(&a.stream, &a.rendition, a.seq)
                || now.duration_since(a.since) >= FETCH_TIMEOUT
            {
                self.release(a.stream, a.hash, None);
            } else {
                self.awaiting.push(a);
            }
        }
    }

    /// The segment's bytes from its held parts, once they add up to its size. Not hashed
    /// here: the replica checks the hash as it stores them (bytes that are not the segment are
    /// refused there, and the segment is then fetched).
    fn parts_of(&self, a: &Awaited) -> Option<Bytes> {
        let bytes = self.catalog.parts().concat(&a.stream, &a.rendition, a.seq)?;
        (bytes.len() as u64 == a.size).then_some(bytes)
    }

    fn offer_assembled(&mut self, stream: StreamId, hash: Hash, bytes: Bytes) {
        let (replica, tx) = (self.replica.clone(), self.tx.clone());
        tokio::task::spawn_blocking(move || {
            let result = replica.put_blob(&stream, hash, bytes);
            let _ = tx.blocking_send(Internal::Assembled { stream, hash, result });
        });
    }

    pub(super) fn on_assembled(&mut self, stream: StreamId, hash: Hash, result: Result<(), manifest_signer::Error>) {
        match result {
            Ok(()) => {
                SwarmMetrics::add(&self.metrics().segments_from_parts, 1);
                if let Some(c) = self.streams.get_mut(&stream) {
                    c.wants.remove(&hash);
                }
                self.drop_stale_wants(stream);
            }
            Err(e) => {
                tracing::debug!(%stream, %hash, code = e.code(), "segment from parts not stored; fetching it");
                self.release(stream, hash, None);
            }
        }
        self.schedule();
    }
}

/// Segments waiting for parts at most (all streams).
const MAX_AWAITED: usize = 64;
