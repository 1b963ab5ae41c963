//! The driver side of [`super::parts::PartRelay`]: gossip, fetches and uploads of LL-HLS parts
//! turned into relay inputs, and the relay's steps carried out on the libp2p swarm.

use std::time::Instant;

use bytes::Bytes;
use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use manifest_signer::{Hash, ManifestRoot, Signed, StreamId};

use super::parts::{Step, Verdict};
use super::proto::{self, Gossip, Request, Response};
use super::{Internal, MAX_UPLOADS, Node, blob_response};
use crate::metrics::SwarmMetrics;
use crate::replica::Wanted;

impl Node {
    /// A gossiped PART statement of a followed stream.
    pub(super) fn on_part_gossip(&mut self, stream: StreamId, wire: &[u8], msg: gossipsub::MessageId, from: PeerId) {
        if self.own == Some(stream) {
            // Our own statements coming back: nothing to fetch, nothing to forward.
            self.report(&msg, &from, MessageAcceptance::Ignore);
            return;
        }
        let steps = self.relay.statement(stream, wire, msg, from, Instant::now());
        self.apply_part_steps(steps);
    }

    /// The origin's own parts, as they are signed: gossiped to the stream's mesh.
    pub(super) fn on_part_added(&mut self, stream: StreamId, wire: Bytes) {
        if self.own != Some(stream) {
            return;
        }
        let data = Gossip::Part(wire.to_vec()).encode();
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(proto::topic(&stream), data)
        {
            tracing::debug!(%stream, error = ?e, "gossip publish of a part");
        }
    }

    /// The answer to a part fetch (`None`: the request failed).
    pub(super) fn on_part_response(&mut self, id: OutboundRequestId, peer: PeerId, resp: Option<Response>) {
        let Some((stream, hash)) = self.part_fetches.remove(&id) else {
            return;
        };
        let steps = match resp {
            Some(Response::Blob(b)) => self.relay.bytes(&stream, &hash, &peer, Bytes::from(b)),
            _ => self.relay.failed(&stream, &hash, &peer),
        };
        self.apply_part_steps(steps);
    }

    /// Serves a held part's bytes to a peer. Parts skip the per-blob upload slots (a part is a
    /// fifth of a second of media, wanted at once by every peer that hears its statement from
    /// this node) but not the cap on uploads.
    pub(super) fn serve_part(
        &mut self,
        request_id: InboundRequestId,
        hash: Hash,
        bytes: Bytes,
        channel: ResponseChannel<Response>,
    ) {
        let resp = if self.uploads.len() >= MAX_UPLOADS {
            SwarmMetrics::add(&self.metrics().busy_replies, 1);
            Response::Busy
        } else {
            self.uploads.insert(request_id, hash);
            SwarmMetrics::add(&self.metrics().parts_served, 1);
            // Counted with the segment bytes: a part is a piece of one.
            SwarmMetrics::add(&self.metrics().bytes_out, bytes.len() as u64);
            blob_response(bytes.to_vec(), self.misbehave.flip)
        };
        let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
    }

    pub(super) fn part_tick(&mut self) {
        let steps = self.relay.tick(Instant::now());
        self.apply_part_steps(steps);
    }

    fn apply_part_steps(&mut self, steps: Vec<Step<gossipsub::MessageId, PeerId>>) {
        for step in steps {
            match step {
                Step::Fetch { peer, stream, hash } => {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_request(&peer, Request::Blob { stream, hash });
                    self.part_fetches.insert(id, (stream, hash));
                }
                Step::Report { msg, from, verdict } => {
                    let acceptance = match verdict {
                        Verdict::Accept => MessageAcceptance::Accept,
                        Verdict::Ignore => MessageAcceptance::Ignore,
                        Verdict::Reject => {
                            SwarmMetrics::add(&self.metrics().gossip_rejected, 1);
                            MessageAcceptance::Reject
                        }
                    };
                    self.report(&msg, &from, acceptance);
                }
                Step::Store { stream, part, bytes } => {
                    SwarmMetrics::add(&self.metrics().parts_in, 1);
                    SwarmMetrics::add(&self.metrics().bytes_in_peer, bytes.len() as u64);
                    self.catalog.parts().add(stream, part, bytes);
                }
                Step::Ban { peer, why } => self.ban(peer, why),
            }
        }
    }

    fn report(&mut self, msg: &gossipsub::MessageId, from: &PeerId, acceptance: MessageAcceptance) {
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(msg, from, acceptance);
    }
}

impl Node {
    /// Segments of a new manifest that this node already holds as parts (those it relayed)
    /// are stored from them, not fetched again: each returned hash is being offered to the
    /// replica, which checks it like any fetched blob.
    pub(super) fn assemble_from_parts(&mut self, stream: StreamId, wire: &[u8], wanted: &[Wanted]) -> Vec<Hash> {
        let Ok(m) = Signed::<ManifestRoot>::from_wire(wire) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in m.body.renditions.iter().filter(|r| r.part_target_us.is_some()) {
            for s in r.segments.iter().filter(|s| wanted.iter().any(|w| w.hash == s.hash)) {
                let Some(bytes) = self.catalog.parts().concat(&stream, &r.name, s.seq) else {
                    continue;
                };
                if bytes.len() as u64 != s.size || Hash::of(&bytes) != s.hash {
                    continue;
                }
                out.push(s.hash);
                let (replica, tx, hash) = (self.replica.clone(), self.tx.clone(), s.hash);
                tokio::task::spawn_blocking(move || {
                    let result = replica.put_blob(&stream, hash, bytes);
                    let _ = tx.blocking_send(Internal::Assembled { stream, hash, result });
                });
            }
        }
        out
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
