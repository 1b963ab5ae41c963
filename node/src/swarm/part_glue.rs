//! The driver side of [`super::parts::PartRelay`]: gossip, fetches and uploads of LL-HLS parts
//! turned into relay inputs, and the relay's steps carried out on the libp2p swarm.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use manifest_signer::{Hash, StreamId};

use super::parts::{Step, Verdict};
use super::proto::{self, Gossip, MAX_ELSEWHERE, Request, Response};
use super::{MAX_UPLOADS, Node, blob_response};
use crate::metrics::SwarmMetrics;

/// How long the peers a part was uploaded to are remembered (to redirect others to them).
const SERVED_MEMORY: Duration = Duration::from_secs(10);

/// The upload side of parts: whom each part went to, and who waits for one still coming.
#[derive(Default)]
pub(super) struct PartUploads {
    /// Peers each part was uploaded to, when it was first asked for, and how many askers were
    /// sent elsewhere (each is given the list from another start, to spread them).
    served: HashMap<Hash, (Instant, Vec<PeerId>, usize)>,
    /// Requests for parts this node is still getting (it was named "elsewhere"): answered when
    /// the part is stored, or "not found" when it will not come.
    parked: HashMap<Hash, Vec<(InboundRequestId, ResponseChannel<Response>, PeerId)>>,
}

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
            Some(Response::Elsewhere(peers)) => {
                let me = *self.swarm.local_peer_id();
                let peers = peers.into_iter().filter(|p| *p != me).collect();
                self.relay.elsewhere(&stream, &hash, &peer, peers)
            }
            _ => self.relay.failed(&stream, &hash, &peer),
        };
        self.apply_part_steps(steps);
    }

    /// A request for a part this node is getting: answered once it has it (or will not).
    pub(super) fn park_part_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        hash: Hash,
        channel: ResponseChannel<Response>,
    ) {
        let parked: usize = self.part_uploads.parked.values().map(Vec::len).sum();
        if parked >= MAX_UPLOADS {
            SwarmMetrics::add(&self.metrics().busy_replies, 1);
            let _ = self.swarm.behaviour_mut().fetch.send_response(channel, Response::Busy);
            return;
        }
        self.part_uploads
            .parked
            .entry(hash)
            .or_default()
            .push((request_id, channel, peer));
    }

    fn answer_parked(&mut self, hash: &Hash, bytes: Option<&Bytes>) {
        for (id, channel, peer) in self.part_uploads.parked.remove(hash).unwrap_or_default() {
            match bytes {
                Some(b) => self.serve_part(peer, id, *hash, b.clone(), channel),
                None => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_response(channel, Response::NotFound);
                }
            }
        }
    }

    /// Serves a held part's bytes to a peer: to `upload_slots` peers per part; the others are
    /// told "elsewhere", with the peers served, so a part spreads as a tree and this node
    /// uploads a few copies however many peers heard its statement from it.
    pub(super) fn serve_part(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        hash: Hash,
        bytes: Bytes,
        channel: ResponseChannel<Response>,
    ) {
        let slots = self.cfg.upload_slots;
        let (_, served, redirected) = self
            .part_uploads
            .served
            .entry(hash)
            .or_insert_with(|| (Instant::now(), Vec::new(), 0));
        let resp = if served.len() >= slots && !served.contains(&peer) {
            *redirected += 1;
            let start = *redirected % served.len();
            let names = served.iter().cycle().skip(start).take(served.len().min(MAX_ELSEWHERE));
            Response::Elsewhere(names.copied().collect())
        } else if self.uploads.len() >= MAX_UPLOADS {
            SwarmMetrics::add(&self.metrics().busy_replies, 1);
            Response::Busy
        } else {
            if !served.contains(&peer) {
                served.push(peer);
            }
            self.uploads.insert(request_id, hash);
            SwarmMetrics::add(&self.metrics().parts_served, 1);
            // Counted with the segment bytes: a part is a piece of one.
            SwarmMetrics::add(&self.metrics().bytes_out, bytes.len() as u64);
            blob_response(bytes.to_vec(), self.misbehave.flip)
        };
        let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
    }

    pub(super) fn part_tick(&mut self) {
        let now = Instant::now();
        self.part_uploads
            .served
            .retain(|_, (t, _, _)| now.duration_since(*t) < SERVED_MEMORY);
        let steps = self.relay.tick(now);
        self.apply_part_steps(steps);
        self.retry_awaited();
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
                    let hash = part.body.hash;
                    self.catalog.parts().add(stream, part, bytes.clone());
                    self.answer_parked(&hash, Some(&bytes));
                    self.retry_awaited();
                }
                Step::Gone { hash, .. } => {
                    SwarmMetrics::add(&self.metrics().parts_lost, 1);
                    self.answer_parked(&hash, None);
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
