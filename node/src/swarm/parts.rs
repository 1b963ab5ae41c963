//! LL-HLS parts across the swarm, as a state machine without I/O (PROTOCOL §15.1).
//!
//! The origin gossips each PART statement (a few hundred bytes) on the stream's topic. A node
//! that hears one verifies it (signature, then the per-rendition chain), fetches the part's
//! bytes from the peer that forwarded it, checks them against the statement, stores them, and
//! only then accepts the gossip message, which is when gossipsub forwards it: a node forwards a
//! statement only once it can serve the bytes, so whoever forwards it to you has them. The
//! bytes never ride in gossip, where every mesh peer would push a copy.
//!
//! A node uploads each part to a few peers (`upload_slots`) and answers the others "elsewhere",
//! naming those it served; the asker then fetches from one of them, which answers as soon as it
//! holds the part. So a part spreads as a tree and the origin uploads a few copies, however many
//! peers hear its statement from it.
//!
//! Per rendition the parts are stored (and accepted) in order, and only while they continue one
//! another: a part lost mid-segment leaves the rest of that segment to its manifest, so a
//! follower lists no gap (PROTOCOL §10.4). The driver (`super::Node`) turns gossip and fetch
//! events into calls here and carries out the [`Step`]s; tests and simulations drive it with
//! any peer and message types.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use manifest_signer::part::{PartChain, SignedPart};
use manifest_signer::{Hash, StreamId};

/// A fetch not answered by then counts as failed (its part then waits for its segment).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Statements waiting for their bytes per rendition at most (10 s of 200 ms parts).
const MAX_PENDING: usize = 50;
/// Peers asked for one part at most: the forwarder, then those it redirects to, each one level
/// further down the part's tree (2^12 peers deep with 2 upload slots; the fetch timeout bounds
/// the time).
const MAX_TRIES: usize = 12;

/// What the driver reports to gossipsub about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Verified, bytes stored: forward it.
    Accept,
    /// Not forwarded, not the sender's fault (old, out of order, bytes not obtained).
    Ignore,
    /// Forged or malformed: penalise the sender.
    Reject,
}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<M, P> {
    /// Ask `peer` for the bytes of part `hash` of `stream`.
    Fetch { peer: P, stream: StreamId, hash: Hash },
    /// Report the gossip message's validation result.
    Report { msg: M, from: P, verdict: Verdict },
    /// A verified part and its bytes: keep and serve them (LL-HLS, peers).
    Store {
        stream: StreamId,
        part: SignedPart,
        bytes: Bytes,
    },
    /// A part this node was getting will not come: answer whoever waits for it "not found".
    Gone { stream: StreamId, hash: Hash },
    /// The peer sent bytes that are not the part it forwarded the statement of.
    Ban { peer: P, why: &'static str },
}

#[derive(Debug)]
enum State {
    Fetching,
    Got(Bytes),
    Failed,
}

#[derive(Debug)]
struct Pending<M, P> {
    part: SignedPart,
    msg: M,
    /// Who forwarded the statement (gossip's propagation source, for the report).
    from: P,
    /// Peers asked for the bytes, the last one being asked now.
    asked: Vec<P>,
    since: Instant,
    state: State,
}

#[derive(Debug)]
struct Lane<M, P> {
    /// In position order; the head is stored first.
    queue: VecDeque<Pending<M, P>>,
    /// Position of the last part queued that continues its segment from part 0.
    last: Option<(u64, u16)>,
}

impl<M, P> Default for Lane<M, P> {
    fn default() -> Self {
        Lane {
            queue: VecDeque::new(),
            last: None,
        }
    }
}

#[derive(Debug)]
struct Stream<M, P> {
    chain: PartChain,
    lanes: HashMap<String, Lane<M, P>>,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub stored: u64,
    pub refused: u64,
    pub dropped: u64,
}

/// Every stream's parts in flight through this node.
#[derive(Debug)]
pub struct PartRelay<M, P> {
    streams: HashMap<StreamId, Stream<M, P>>,
    pub counts: Counts,
}

impl<M, P> Default for PartRelay<M, P> {
    fn default() -> Self {
        PartRelay {
            streams: HashMap::new(),
            counts: Counts::default(),
        }
    }
}

impl<M: Clone, P: Clone + PartialEq> PartRelay<M, P> {
    /// A PART statement gossiped on `stream`'s topic, forwarded by `from`.
    pub fn statement(&mut self, stream: StreamId, wire: &[u8], msg: M, from: P, now: Instant) -> Vec<Step<M, P>> {
        let report = |verdict| {
            vec![Step::Report {
                msg: msg.clone(),
                from: from.clone(),
                verdict,
            }]
        };
        let s = self.streams.entry(stream).or_insert_with(|| Stream {
            chain: PartChain::new(stream),
            lanes: HashMap::new(),
        });
        let part = match s.chain.accept_wire(wire) {
            Ok(p) => p,
            // Heard again through another path, or after a newer one: nobody lied.
            Err(e) if e.code() == "replay" => {
                self.counts.dropped += 1;
                return report(Verdict::Ignore);
            }
            Err(e) => {
                tracing::warn!(%stream, code = e.code(), error = %e, "gossiped PART refused");
                self.counts.refused += 1;
                return report(Verdict::Reject);
            }
        };
        let lane = s.lanes.entry(part.body.rendition.clone()).or_default();
        let pos = part.body.position();
        let continues = pos.1 == 0 || lane.last.is_some_and(|(seq, p)| seq == pos.0 && p + 1 == pos.1);
        if !continues || lane.queue.len() >= MAX_PENDING {
            // A part after a gap in its segment: the rest of the segment comes with it whole.
            self.counts.dropped += 1;
            return report(Verdict::Ignore);
        }
        lane.last = Some(pos);
        let hash = part.body.hash;
        lane.queue.push_back(Pending {
            part,
            msg,
            from: from.clone(),
            asked: vec![from.clone()],
            since: now,
            state: State::Fetching,
        });
        vec![Step::Fetch {
            peer: from,
            stream,
            hash,
        }]
    }

    /// Bytes `from` sent for part `hash` of `stream`.
    pub fn bytes(&mut self, stream: &StreamId, hash: &Hash, from: &P, bytes: Bytes) -> Vec<Step<M, P>> {
        let mut out = Vec::new();
        let Some(p) = self.find(stream, hash, from) else {
            return out;
        };
        match p.part.check_bytes(&bytes) {
            Ok(()) => p.state = State::Got(bytes),
            Err(e) => {
                tracing::warn!(%stream, %hash, code = e.code(), error = %e, "part bytes from a peer refused");
                p.state = State::Failed;
                out.push(Step::Ban {
                    peer: from.clone(),
                    why: "sent part bytes that do not match their statement",
                });
            }
        }
        self.drain(&mut out);
        out
    }

    /// The fetch of part `hash` from `from` failed (not found, busy, timed out, disconnected).
    pub fn failed(&mut self, stream: &StreamId, hash: &Hash, from: &P) -> Vec<Step<M, P>> {
        let mut out = Vec::new();
        if let Some(p) = self.find(stream, hash, from) {
            p.state = State::Failed;
        }
        self.drain(&mut out);
        out
    }

    /// `from` uploads part `hash` to enough peers already and names them: ask the first one
    /// not asked yet (the driver leaves this node out of `peers`).
    pub fn elsewhere(&mut self, stream: &StreamId, hash: &Hash, from: &P, peers: Vec<P>) -> Vec<Step<M, P>> {
        let mut out = Vec::new();
        let Some(p) = self.find(stream, hash, from) else {
            return out;
        };
        match peers.into_iter().find(|c| !p.asked.contains(c)) {
            Some(next) if p.asked.len() < MAX_TRIES => {
                p.asked.push(next.clone());
                out.push(Step::Fetch {
                    peer: next,
                    stream: *stream,
                    hash: *hash,
                });
            }
            _ => {
                p.state = State::Failed;
                self.drain(&mut out);
            }
        }
        out
    }

    /// Whether this node is getting part `hash` of `stream` now (a peer asking for it can wait).
    pub fn pending(&self, stream: &StreamId, hash: &Hash) -> bool {
        self.streams.get(stream).is_some_and(|s| {
            s.lanes
                .values()
                .flat_map(|l| l.queue.iter())
                .any(|p| p.part.body.hash == *hash && matches!(p.state, State::Fetching | State::Got(_)))
        })
    }

    /// Whether a part of segment `seq` of `rendition` is being fetched now.
    pub fn pending_in(&self, stream: &StreamId, rendition: &str, seq: u64) -> bool {
        self.streams
            .get(stream)
            .and_then(|s| s.lanes.get(rendition))
            .is_some_and(|l| l.queue.iter().any(|p| p.part.body.seq == seq))
    }

    /// Gives up on fetches older than [`FETCH_TIMEOUT`].
    pub fn tick(&mut self, now: Instant) -> Vec<Step<M, P>> {
        let mut out = Vec::new();
        for s in self.streams.values_mut() {
            for lane in s.lanes.values_mut() {
                for p in &mut lane.queue {
                    if matches!(p.state, State::Fetching) && now.duration_since(p.since) >= FETCH_TIMEOUT {
                        p.state = State::Failed;
                    }
                }
            }
        }
        self.drain(&mut out);
        out
    }

    fn find(&mut self, stream: &StreamId, hash: &Hash, from: &P) -> Option<&mut Pending<M, P>> {
        self.streams
            .get_mut(stream)?
            .lanes
            .values_mut()
            .flat_map(|l| l.queue.iter_mut())
            .find(|p| p.part.body.hash == *hash && p.asked.last() == Some(from) && matches!(p.state, State::Fetching))
    }

    /// Stores and accepts, in order, what is ready at the head of each lane. A failed part
    /// drops the parts queued after it in its segment: they would be listed after a gap.
    fn drain(&mut self, out: &mut Vec<Step<M, P>>) {
        for (stream, s) in &mut self.streams {
            for lane in s.lanes.values_mut() {
                let mut broken: Option<u64> = None;
                while let Some(head) = lane.queue.front() {
                    let in_broken = broken == Some(head.part.body.seq) && head.part.body.part > 0;
                    if !in_broken && matches!(head.state, State::Fetching) {
                        break;
                    }
                    let Some(p) = lane.queue.pop_front() else { break };
                    match p.state {
                        State::Got(bytes) if !in_broken => {
                            self.counts.stored += 1;
                            out.push(Step::Store {
                                stream: *stream,
                                part: p.part,
                                bytes,
                            });
                            out.push(Step::Report {
                                msg: p.msg,
                                from: p.from,
                                verdict: Verdict::Accept,
                            });
                        }
                        _ => {
                            broken = Some(p.part.body.seq);
                            self.counts.dropped += 1;
                            out.push(Step::Gone {
                                stream: *stream,
                                hash: p.part.body.hash,
                            });
                            out.push(Step::Report {
                                msg: p.msg,
                                from: p.from,
                                verdict: Verdict::Ignore,
                            });
                        }
                    }
                }
                // Parts heard later for a broken segment are not queued either.
                if let (Some(seq), Some(last)) = (broken, lane.last)
                    && last.0 == seq
                {
                    lane.last = None;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "parts_tests.rs"]
mod tests;
