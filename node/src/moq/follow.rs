//! Subscriber-side verification of a stream received over MoQ, independent of the network:
//! feed it the frames of each track's groups; it hands back only what the broadcaster signed.
//!
//! - A manifest group's frame must verify under the stream id and extend the chain (§5.4, §8).
//! - An announce must verify and be fresh and newer (§7).
//! - A rendition group `seq` must hold `[init, media]` (fMP4) or `[media]` (TS) whose BLAKE3
//!   and sizes match the segment `seq` of that rendition in an accepted manifest. A group that
//!   arrives before the manifest listing it waits (bounded); one no manifest lists by the time
//!   the window has moved past it is refused.
//!
//! Bounded: listings kept per rendition, pending groups (count and bytes), frame sizes.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use manifest_signer::objects::limits;
use manifest_signer::{AnnounceSlot, Container, Hash, ManifestChain, ManifestRoot, Signed, StreamAnnounce, StreamId};

/// Groups kept while waiting for the manifest that lists them.
const MAX_PENDING: usize = 32;
/// Bytes of such groups kept at most.
const MAX_PENDING_BYTES: usize = 96 * 1024 * 1024;
/// Listings remembered per rendition behind the newest manifest's window.
const KEEP_BEHIND: u64 = limits::MAX_WINDOW_SEGMENTS as u64;

/// Why an object received over MoQ was refused. `reason()` is the metrics label.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("manifest refused: {0}")]
    Manifest(manifest_signer::Error),
    #[error("announce refused: {0}")]
    Announce(manifest_signer::Error),
    #[error("{rendition} #{seq}: {what} hashes to {actual}, the signed manifest says {expected}")]
    HashMismatch {
        rendition: String,
        seq: u64,
        what: &'static str,
        expected: Hash,
        actual: Hash,
    },
    #[error("{rendition} #{seq}: {0}", .detail)]
    Shape {
        rendition: String,
        seq: u64,
        detail: String,
    },
    #[error("{rendition} #{seq}: no accepted manifest lists this segment")]
    Unlisted { rendition: String, seq: u64 },
    #[error("{0}")]
    Malformed(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Manifest(_) => "manifest",
            Refusal::Announce(_) => "announce",
            Refusal::HashMismatch { .. } => "hash",
            Refusal::Shape { .. } => "shape",
            Refusal::Unlisted { .. } => "unlisted",
            Refusal::Malformed(_) => "malformed",
        }
    }
}

/// A segment whose bytes match a signed manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    pub rendition: String,
    pub seq: u64,
    pub hash: Hash,
    pub ext: &'static str,
    pub bytes: Bytes,
    /// The init segment (fMP4): its hash and bytes.
    pub init: Option<(Hash, Bytes)>,
    /// `time_ms` of the first accepted manifest that listed the segment: when it was signed.
    pub signed_ms: u64,
    pub pdt_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct Listing {
    hash: Hash,
    size: u64,
    init: Option<Hash>,
    container: Container,
    signed_ms: u64,
    pdt_ms: Option<u64>,
    delivered: bool,
}

#[derive(Debug)]
struct Pending {
    rendition: String,
    seq: u64,
    frames: Vec<Bytes>,
}

/// Largest frame accepted for a rendition group's `index`-th frame, given its container.
pub fn max_frame_bytes(container_has_init: bool, index: usize) -> u64 {
    if container_has_init && index == 0 {
        limits::MAX_INIT_BYTES
    } else {
        limits::MAX_SEGMENT_BYTES
    }
}

#[derive(Debug)]
pub struct Follower {
    id: StreamId,
    chain: ManifestChain,
    announce: AnnounceSlot,
    listed: HashMap<String, HashMap<u64, Listing>>,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
}

impl Follower {
    pub fn new(id: StreamId) -> Self {
        Follower {
            id,
            chain: ManifestChain::new(id),
            announce: AnnounceSlot::new(id),
            listed: HashMap::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
        }
    }

    pub fn latest(&self) -> Option<&Signed<ManifestRoot>> {
        self.chain.latest()
    }

    /// The container of a rendition named in an accepted manifest.
    pub fn container(&self, rendition: &str) -> Option<Container> {
        self.chain.latest()?.body.rendition(rendition).map(|r| r.container)
    }

    pub fn on_announce(&mut self, wire: &[u8]) -> Result<Signed<StreamAnnounce>, Refusal> {
        if wire.len() > limits::MAX_ANNOUNCE_BYTES {
            return Err(Refusal::Malformed(format!("announce of {} bytes", wire.len())));
        }
        self.announce
            .accept_wire(wire, manifest_signer::now_ms())
            .map_err(Refusal::Announce)
    }

    /// A manifest group's frame. Ok: the manifest, and segments waiting for it that now verify
    /// (plus refusals of waiting groups it settles).
    #[allow(clippy::type_complexity)]
    pub fn on_manifest(
        &mut self,
        wire: &[u8],
    ) -> Result<(Signed<ManifestRoot>, Vec<Result<Verified, Refusal>>), Refusal> {
        if wire.len() > limits::MAX_MANIFEST_BYTES {
            return Err(Refusal::Malformed(format!("manifest of {} bytes", wire.len())));
        }
        let m = self.chain.accept_wire(wire).map_err(Refusal::Manifest)?;
        for r in &m.body.renditions {
            let map = self.listed.entry(r.name.clone()).or_default();
            for s in &r.segments {
                map.entry(s.seq).or_insert(Listing {
                    hash: s.hash,
                    size: s.size,
                    init: s.init,
                    container: r.container,
                    signed_ms: m.body.time_ms,
                    pdt_ms: s.pdt_ms,
                    delivered: false,
                });
            }
            if let Some(first) = r.segments.first() {
                let floor = first.seq.saturating_sub(KEEP_BEHIND);
                map.retain(|seq, _| *seq >= floor);
            }
        }
        self.listed.retain(|name, _| m.body.rendition(name).is_some());
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            self.pending_bytes -= p.frames.iter().map(Bytes::len).sum::<usize>();
            match self.check(&p.rendition, p.seq, p.frames) {
                Check::Done(r) => out.push(r),
                Check::Duplicate => {}
                Check::Wait(frames) => {
                    let behind = m
                        .body
                        .rendition(&p.rendition)
                        .and_then(|r| r.segments.first())
                        .is_some_and(|first| p.seq < first.seq);
                    if behind || m.body.rendition(&p.rendition).is_none() {
                        out.push(Err(Refusal::Unlisted {
                            rendition: p.rendition,
                            seq: p.seq,
                        }));
                    } else {
                        self.pending_bytes += frames.iter().map(Bytes::len).sum::<usize>();
                        self.pending.push_back(Pending { frames, ..p });
                    }
                }
            }
        }
        Ok((m, out))
    }

    /// A rendition group's frames. `Ok(None)`: waiting for its manifest, or a duplicate.
    pub fn on_group(&mut self, rendition: &str, seq: u64, frames: Vec<Bytes>) -> Result<Option<Verified>, Refusal> {
        match self.check(rendition, seq, frames) {
            Check::Done(r) => r.map(Some),
            Check::Duplicate => Ok(None),
            Check::Wait(frames) => {
                let latest = self.chain.latest();
                let known = latest.and_then(|m| m.body.rendition(rendition));
                let behind = known
                    .and_then(|r| r.segments.first())
                    .is_some_and(|first| seq < first.seq);
                if behind || (latest.is_some() && known.is_none() && self.pending.len() >= MAX_PENDING / 2) {
                    return Err(Refusal::Unlisted {
                        rendition: rendition.into(),
                        seq,
                    });
                }
                let len: usize = frames.iter().map(Bytes::len).sum();
                self.pending_bytes += len;
                self.pending.push_back(Pending {
                    rendition: rendition.into(),
                    seq,
                    frames,
                });
                while self.pending.len() > MAX_PENDING || self.pending_bytes > MAX_PENDING_BYTES {
                    let Some(old) = self.pending.pop_front() else { break };
                    self.pending_bytes -= old.frames.iter().map(Bytes::len).sum::<usize>();
                    tracing::debug!(rendition = %old.rendition, seq = old.seq, "moq group dropped unverified: waited too long for its manifest");
                }
                Ok(None)
            }
        }
    }

    fn check(&mut self, rendition: &str, seq: u64, frames: Vec<Bytes>) -> Check {
        let Some(l) = self.listed.get_mut(rendition).and_then(|m| m.get_mut(&seq)) else {
            return Check::Wait(frames);
        };
        if l.delivered {
            return Check::Duplicate;
        }
        let shape = |detail: String| {
            Check::Done(Err(Refusal::Shape {
                rendition: rendition.into(),
                seq,
                detail,
            }))
        };
        let want = if l.init.is_some() { 2 } else { 1 };
        if frames.len() != want {
            return shape(format!("{} frames, expected {want}", frames.len()));
        }
        let mut frames = frames.into_iter();
        let init = match l.init {
            Some(expected) => {
                let Some(bytes) = frames.next() else {
                    return shape("no init frame".into());
                };
                if bytes.len() as u64 > limits::MAX_INIT_BYTES {
                    return shape(format!("init frame of {} bytes", bytes.len()));
                }
                let actual = Hash::of(&bytes);
                if actual != expected {
                    return Check::Done(Err(Refusal::HashMismatch {
                        rendition: rendition.into(),
                        seq,
                        what: "init segment",
                        expected,
                        actual,
                    }));
                }
                Some((actual, bytes))
            }
            None => None,
        };
        let Some(bytes) = frames.next() else {
            return shape("no media frame".into());
        };
        if bytes.len() as u64 != l.size {
            return shape(format!(
                "media frame of {} bytes, the manifest says {}",
                bytes.len(),
                l.size
            ));
        }
        let actual = Hash::of(&bytes);
        if actual != l.hash {
            return Check::Done(Err(Refusal::HashMismatch {
                rendition: rendition.into(),
                seq,
                what: "segment",
                expected: l.hash,
                actual,
            }));
        }
        l.delivered = true;
        Check::Done(Ok(Verified {
            rendition: rendition.into(),
            seq,
            hash: actual,
            ext: l.container.media_ext(),
            bytes,
            init,
            signed_ms: l.signed_ms,
            pdt_ms: l.pdt_ms,
        }))
    }

    pub fn stream(&self) -> &StreamId {
        &self.id
    }
}

enum Check {
    Done(Result<Verified, Refusal>),
    Duplicate,
    Wait(Vec<Bytes>),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use manifest_signer::signer::{NewSegment, RenditionInfo, SignerConfig, StreamSigner};
    use manifest_signer::{Container, StreamKey};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        signer: StreamSigner,
        id: StreamId,
        init: Bytes,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = StreamKey::from_seed([7; 32]);
            let id = key.stream_id();
            let signer = StreamSigner::open(key, dir.path(), SignerConfig::default()).expect("signer");
            Fixture {
                _dir: dir,
                signer,
                id,
                init: Bytes::from_static(b"init segment"),
            }
        }

        /// Sign one more segment; returns (manifest wire, media bytes, seq).
        fn sign(&mut self, n: u8) -> (Vec<u8>, Bytes, u64) {
            let media = Bytes::from(vec![n; 100 + usize::from(n)]);
            let m = self
                .signer
                .publish(vec![NewSegment {
                    rendition: "source".into(),
                    container: Container::Fmp4,
                    data: Arc::from(&media[..]),
                    init: Some(Arc::from(&self.init[..])),
                    duration_us: 2_000_000,
                    discontinuity: false,
                    independent: true,
                    pdt_ms: Some(1000 * u64::from(n)),
                    info: RenditionInfo::default(),
                }])
                .expect("signed");
            let seq = m.body.renditions[0].segments.last().map(|s| s.seq).expect("a segment");
            (m.wire().to_vec(), media, seq)
        }
    }

    #[test]
    fn a_segment_verifies_against_the_manifest_before_or_after_it_arrives() {
        let mut fx = Fixture::new();
        let mut f = Follower::new(fx.id);
        let (wire, media, seq) = fx.sign(1);
        // The group first: it waits for its manifest.
        let frames = vec![fx.init.clone(), media.clone()];
        assert!(f.on_group("source", seq, frames.clone()).expect("waits").is_none());
        let (m, settled) = f.on_manifest(&wire).expect("manifest verifies");
        assert_eq!(m.body.seq, 0);
        assert_eq!(settled.len(), 1);
        let v = settled.into_iter().next().and_then(Result::ok).expect("verified");
        assert_eq!((v.seq, v.bytes.clone()), (seq, media.clone()));
        assert_eq!(v.signed_ms, m.body.time_ms);
        // The same group again (a relay replaying it) is a duplicate, not a second delivery.
        assert!(f.on_group("source", seq, frames).expect("duplicate").is_none());
        // Manifest first, then the group.
        let (wire, media, seq) = fx.sign(2);
        f.on_manifest(&wire).expect("next manifest");
        let v = f
            .on_group("source", seq, vec![fx.init.clone(), media.clone()])
            .expect("verifies")
            .expect("delivered");
        assert_eq!(v.bytes, media);
        assert_eq!(v.init.map(|(_, b)| b), Some(fx.init.clone()));
    }

    #[test]
    fn tampered_forged_and_replayed_objects_are_refused() {
        let mut fx = Fixture::new();
        let mut f = Follower::new(fx.id);
        let (wire, media, seq) = fx.sign(1);
        f.on_manifest(&wire).expect("manifest");
        // A flipped byte in the media segment.
        let mut bad = media.to_vec();
        bad[10] ^= 1;
        let err = f
            .on_group("source", seq, vec![fx.init.clone(), Bytes::from(bad)])
            .expect_err("tampered segment refused");
        assert_eq!(err.reason(), "hash", "{err}");
        // A tampered init segment.
        let err = f
            .on_group("source", seq, vec![Bytes::from_static(b"other init"), media.clone()])
            .expect_err("tampered init refused");
        assert_eq!(err.reason(), "hash", "{err}");
        // Wrong shape: a missing init frame, or a third frame.
        let err = f.on_group("source", seq, vec![media.clone()]).expect_err("shape");
        assert_eq!(err.reason(), "shape");
        let three = vec![fx.init.clone(), media.clone(), media.clone()];
        assert_eq!(f.on_group("source", seq, three).expect_err("shape").reason(), "shape");
        // The genuine one still verifies after all that.
        assert!(
            f.on_group("source", seq, vec![fx.init.clone(), media])
                .expect("ok")
                .is_some()
        );
        // A manifest with a flipped byte, and a replay of the old one.
        let (wire2, _, _) = fx.sign(2);
        let mut forged = wire2.clone();
        let i = forged.iter().position(|&b| b == b'"').expect("json");
        forged[i + 1] ^= 1;
        assert_eq!(f.on_manifest(&forged).expect_err("forged").reason(), "manifest");
        f.on_manifest(&wire2).expect("genuine successor");
        let replay = f.on_manifest(&wire).expect_err("replay refused");
        assert!(matches!(
            replay,
            Refusal::Manifest(manifest_signer::Error::Replay { .. })
        ));
        // Another stream's manifest.
        let mut other = Fixture::new();
        other.signer = StreamSigner::open(
            StreamKey::from_seed([8; 32]),
            other._dir.path(),
            SignerConfig::default(),
        )
        .expect("signer");
        let (foreign, _, _) = other.sign(1);
        assert_eq!(f.on_manifest(&foreign).expect_err("wrong key").reason(), "manifest");
    }

    #[test]
    fn waiting_groups_are_bounded_and_refused_once_the_window_has_passed_them() {
        let mut fx = Fixture::new();
        let mut f = Follower::new(fx.id);
        for i in 0..(MAX_PENDING as u64 + 10) {
            let _ = f.on_group(
                "source",
                1000 + i,
                vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")],
            );
        }
        assert_eq!(f.pending.len(), MAX_PENDING);
        // A group for seq 2 waits; the first manifest seen lists only the last 8 of 12.
        f.pending.clear();
        f.pending_bytes = 0;
        assert!(
            f.on_group("source", 2, vec![fx.init.clone(), Bytes::from_static(b"z")])
                .expect("waits")
                .is_none()
        );
        let mut wire = Vec::new();
        for n in 0..12 {
            wire = fx.sign(n).0;
        }
        let (m, settled) = f.on_manifest(&wire).expect("manifest");
        assert_eq!(m.body.renditions[0].segments.first().map(|s| s.seq), Some(4));
        let err = settled.into_iter().next().and_then(Result::err).expect("refused");
        assert_eq!(err.reason(), "unlisted", "{err}");
        // And a group behind the window arriving now is refused at once.
        let err = f
            .on_group("source", 1, vec![fx.init.clone(), Bytes::from_static(b"z")])
            .expect_err("behind");
        assert_eq!(err.reason(), "unlisted");
        assert_eq!(f.pending_bytes, 0);
    }
}
