//! Verify-then-accept for a stream's sequence of signed objects: replay, rollback, chain breaks
//! and equivocation. One `ManifestChain` per stream a consumer follows.

use std::collections::BTreeMap;

use crate::objects::{ManifestRoot, Signed, StreamAnnounce};
use crate::{Error, Hash, Result, StreamId};

/// How many recent (seq -> id) pairs are remembered to catch equivocation.
const REMEMBERED: usize = 256;
/// Evidence pairs kept at most.
const MAX_EVIDENCE: usize = 16;

/// Two validly signed manifests with one sequence number: proof the key holder equivocated.
#[derive(Clone, Debug)]
pub struct Equivocation {
    pub first: Signed<ManifestRoot>,
    pub second: Signed<ManifestRoot>,
}

/// The state a consumer keeps for one stream's MANIFEST_ROOT chain.
#[derive(Debug)]
pub struct ManifestChain {
    stream: StreamId,
    latest: Option<Signed<ManifestRoot>>,
    recent: BTreeMap<u64, Signed<ManifestRoot>>,
    evidence: Vec<Equivocation>,
}

impl ManifestChain {
    pub fn new(stream: StreamId) -> Self {
        ManifestChain {
            stream,
            latest: None,
            recent: BTreeMap::new(),
            evidence: Vec::new(),
        }
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    pub fn latest(&self) -> Option<&Signed<ManifestRoot>> {
        self.latest.as_ref()
    }

    /// Equivocation evidence collected so far.
    pub fn evidence(&self) -> &[Equivocation] {
        &self.evidence
    }

    /// Verify wire bytes and accept them as the new latest manifest.
    pub fn accept_wire(&mut self, wire: &[u8]) -> Result<Signed<ManifestRoot>> {
        let m = Signed::<ManifestRoot>::verify(wire, &self.stream)?;
        self.accept(m.clone())?;
        Ok(m)
    }

    /// Accept an already signature-checked manifest of this stream.
    ///
    /// Rules (docs/PROTOCOL.md §8): a sequence number seen before with another id is
    /// equivocation (both kept); a sequence number not above the latest is a replay; the
    /// successor of the latest must name it in `prev`; the log never shrinks, and a log of the
    /// same size keeps the same root. A gap in sequence numbers is accepted (gossip loses
    /// messages); the log rules still hold across it.
    pub fn accept(&mut self, m: Signed<ManifestRoot>) -> Result<()> {
        if m.body.stream != self.stream {
            return Err(Error::WrongKey {
                expected: self.stream.to_string(),
                found: m.body.stream.to_string(),
            });
        }
        if let Some(seen) = self.recent.get(&m.body.seq)
            && seen.id != m.id
        {
            if self.evidence.len() < MAX_EVIDENCE {
                self.evidence.push(Equivocation {
                    first: seen.clone(),
                    second: m.clone(),
                });
            }
            return Err(Error::Equivocation { seq: m.body.seq });
        }
        if let Some(latest) = &self.latest {
            let (seq, last) = (m.body.seq, latest.body.seq);
            if seq <= last {
                return Err(Error::Replay { seq, latest: last });
            }
            if seq == last + 1 && m.body.prev != Some(latest.id) {
                return Err(Error::ChainBreak {
                    seq,
                    reason: "prev does not name the previous manifest".into(),
                });
            }
            let (old, new) = (latest.body.log, m.body.log);
            if new.size < old.size {
                return Err(Error::ChainBreak {
                    seq,
                    reason: format!("log shrank from {} to {}", old.size, new.size),
                });
            }
            if new.size == old.size && new.root != old.root {
                return Err(Error::ChainBreak {
                    seq,
                    reason: "log rewritten at the same size".into(),
                });
            }
            if m.body.time_ms < latest.body.time_ms {
                return Err(Error::ChainBreak {
                    seq,
                    reason: "time went backwards".into(),
                });
            }
        }
        self.recent.insert(m.body.seq, m.clone());
        while self.recent.len() > REMEMBERED {
            self.recent.pop_first();
        }
        self.latest = Some(m);
        Ok(())
    }

    /// Id of the latest accepted manifest.
    pub fn latest_id(&self) -> Option<Hash> {
        self.latest.as_ref().map(|m| m.id)
    }
}

/// The latest STREAM_ANNOUNCE of a stream: sequence must increase and it must not be expired.
#[derive(Debug)]
pub struct AnnounceSlot {
    stream: StreamId,
    latest: Option<Signed<StreamAnnounce>>,
}

impl AnnounceSlot {
    pub fn new(stream: StreamId) -> Self {
        AnnounceSlot { stream, latest: None }
    }

    pub fn latest(&self) -> Option<&Signed<StreamAnnounce>> {
        self.latest.as_ref()
    }

    pub fn accept_wire(&mut self, wire: &[u8], now_ms: u64) -> Result<Signed<StreamAnnounce>> {
        let a = Signed::<StreamAnnounce>::verify(wire, &self.stream)?;
        a.body.check_fresh(now_ms)?;
        if let Some(latest) = &self.latest
            && a.body.seq <= latest.body.seq
        {
            if a.body.seq == latest.body.seq && a.id != latest.id {
                return Err(Error::Equivocation { seq: a.body.seq });
            }
            return Err(Error::Replay {
                seq: a.body.seq,
                latest: latest.body.seq,
            });
        }
        self.latest = Some(a.clone());
        Ok(a)
    }
}
