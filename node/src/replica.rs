//! A stream this node carries but does not sign: the seeding side of the node.
//!
//! Signed objects and segment bytes arrive from any transport (the libp2p swarm, HTTP origins,
//! MoQ). The replica verifies each manifest (signature and chain rules) and asks for the blobs
//! its windows list. A blob is accepted only if a manifest the replica took lists its hash
//! and size and its bytes hash to that name. Once every blob of a manifest's windows is
//! held, the replica stores the manifest (the commit point a restart resumes from) and hands
//! it to the catalog, which serves it over HTTP like an origin's own: a playlist never lists
//! a segment this node cannot serve.
//!
//! Retention: blobs leave the disk once they are out of every window and more than
//! `retain` newer blobs have arrived.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use manifest_signer::objects::INIT_EXT;
use manifest_signer::store::{SEGMENT_DIR, StreamStore};
use manifest_signer::{Error, Hash, ManifestChain, ManifestRoot, Signed, StreamId};

use crate::catalog::{Catalog, Refused};
use crate::metrics::FailureSource;

/// Manifests waiting for their blobs, per stream. Older ones are dropped first: a newer
/// complete manifest supersedes them.
const MAX_PENDING: usize = 16;

/// `Wanted::size` of an init segment that only a segment's `init` field names.
pub const SIZE_UNKNOWN: u64 = u64::MAX;

/// A blob a manifest lists that this node does not hold yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Wanted {
    pub hash: Hash,
    pub size: u64,
    pub ext: &'static str,
}

/// What became of an offered manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// New and valid; these blobs are still missing (empty: already served).
    New { seq: u64, wanted: Vec<Wanted> },
    /// The manifest the replica already has (a duplicate, not a replay).
    Known { seq: u64 },
}

#[derive(Debug)]
struct Replicated {
    store: StreamStore,
    chain: ManifestChain,
    /// Accepted, waiting for blobs; oldest first.
    pending: VecDeque<Signed<ManifestRoot>>,
    /// Blobs pending manifests list and this node lacks.
    wanted: HashMap<Hash, Wanted>,
    /// Blobs on disk, oldest first (retention order).
    held: VecDeque<Hash>,
    held_set: HashSet<Hash>,
    /// Announce wire bytes that arrived before the first manifest was served.
    early_announce: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Replica {
    data_dir: PathBuf,
    catalog: Arc<Catalog>,
    retain: usize,
    streams: Mutex<HashMap<StreamId, Replicated>>,
}

impl Replica {
    pub fn new(data_dir: &Path, catalog: Arc<Catalog>, retain: usize) -> Self {
        Replica {
            data_dir: data_dir.to_path_buf(),
            catalog,
            retain: retain.max(manifest_signer::objects::limits::MAX_WINDOW_SEGMENTS),
            streams: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Verify `wire` as a MANIFEST_ROOT of `id` and take it if it extends the chain.
    pub fn offer_manifest_wire(&self, id: &StreamId, wire: &[u8]) -> Result<Offered, Refused> {
        let m = match Signed::<ManifestRoot>::verify(wire, id) {
            Ok(m) => m,
            Err(e) => {
                self.catalog.metrics().verification_failure(FailureSource::Peer);
                return Err(e);
            }
        };
        let mut streams = self.lock();
        let r = self.state(&mut streams, id)?;
        if r.chain.latest_id() == Some(m.id) {
            return Ok(Offered::Known { seq: m.body.seq });
        }
        if let Err(e) = r.chain.accept(m.clone()) {
            // An older manifest is normal (a slower peer, reordered gossip), not a forgery.
            if !matches!(e, Error::Replay { .. }) {
                self.catalog.metrics().verification_failure(FailureSource::Peer);
            }
            return Err(e);
        }
        let seq = m.body.seq;
        let mut wanted = Vec::new();
        for w in blobs(&m.body) {
            if !r.held_set.contains(&w.hash) {
                r.wanted.insert(w.hash, w);
                wanted.push(w);
            }
        }
        r.pending.push_back(m);
        while r.pending.len() > MAX_PENDING {
            r.pending.pop_front();
        }
        self.commit_ready(id, r);
        Ok(Offered::New { seq, wanted })
    }

    /// Take announce wire bytes for `id` (verified and checked by the catalog).
    pub fn offer_announce_wire(&self, id: &StreamId, wire: &[u8]) -> Result<(), Refused> {
        if self.catalog.get(id).is_none() {
            let mut streams = self.lock();
            // Checked now so junk is refused early; applied when the first manifest is served.
            manifest_signer::Signed::<manifest_signer::StreamAnnounce>::verify(wire, id)?
                .body
                .check_fresh(manifest_signer::now_ms())?;
            let r = self.state(&mut streams, id)?;
            r.early_announce = Some(wire.to_vec());
            return Ok(());
        }
        let held = self.catalog.get(id).and_then(|v| v.announce.as_ref().map(|a| a.id));
        self.catalog.offer_announce_wire(id, wire)?;
        let now = self.catalog.get(id).and_then(|v| v.announce.clone());
        if let Some(a) = now
            && Some(a.id) != held
        {
            let streams = self.lock();
            if let Some(r) = streams.get(id)
                && let Err(e) = r.store.write_announce(&a)
            {
                tracing::warn!(stream = %id, error = %e, "cannot store STREAM_ANNOUNCE");
            }
        }
        Ok(())
    }

    /// The blobs `id`'s pending manifests still need.
    pub fn wanted(&self, id: &StreamId) -> Vec<Wanted> {
        self.lock()
            .get(id)
            .map(|r| r.wanted.values().copied().collect())
            .unwrap_or_default()
    }

    /// Whether the blob is still wanted (a fetcher checks before spending bandwidth).
    pub fn is_wanted(&self, id: &StreamId, hash: &Hash) -> bool {
        self.lock().get(id).is_some_and(|r| r.wanted.contains_key(hash))
    }

    /// Bytes of a wanted blob: refused unless they hash to its name and have its size. Stores
    /// them, and serves every manifest this completes. Blocking (disk writes).
    pub fn put_blob(&self, id: &StreamId, hash: Hash, bytes: Bytes) -> Result<(), Refused> {
        let want = {
            let streams = self.lock();
            let r = streams.get(id).ok_or_else(|| unsolicited(&hash))?;
            if r.held_set.contains(&hash) {
                return Ok(());
            }
            *r.wanted.get(&hash).ok_or_else(|| unsolicited(&hash))?
        };
        let size_ok = match want.size {
            // An older init segment a window still names: only its hash is signed.
            SIZE_UNKNOWN => bytes.len() as u64 <= manifest_signer::objects::limits::MAX_INIT_BYTES,
            n => bytes.len() as u64 == n,
        };
        let actual = Hash::of(&bytes);
        if !size_ok || actual != hash {
            self.catalog.metrics().verification_failure(FailureSource::Peer);
            return Err(Error::HashMismatch {
                what: format!("blob of {} bytes", bytes.len()),
                expected: hash.to_string(),
                actual: actual.to_string(),
            });
        }
        let rel = format!("{SEGMENT_DIR}/{hash}.{}", want.ext);
        let mut streams = self.lock();
        let r = streams.get_mut(id).ok_or_else(|| unsolicited(&hash))?;
        r.store.put_blob(&rel, &bytes)?;
        self.catalog.cache().put(hash, want.ext, bytes);
        r.wanted.remove(&hash);
        if r.held_set.insert(hash) {
            r.held.push_back(hash);
        }
        self.commit_ready(id, r);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Replicated>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The replica state of `id`, opened from disk the first time: the stored manifest primes
    /// the chain (so a restarted seeder refuses replays) and the segment directory lists what is
    /// held. A blob on disk that was tampered with is caught when it is served (re-hashed).
    fn state<'a>(
        &self,
        streams: &'a mut HashMap<StreamId, Replicated>,
        id: &StreamId,
    ) -> Result<&'a mut Replicated, Refused> {
        if !streams.contains_key(id) {
            let store = StreamStore::open(&self.data_dir, *id)?;
            let mut chain = ManifestChain::new(*id);
            if let Ok(Some(m)) = store.read_manifest()
                && m.body.stream == *id
            {
                let _ = chain.accept(m);
            }
            let mut held = Vec::new();
            if let Ok(dir) = std::fs::read_dir(store.path(SEGMENT_DIR)) {
                for e in dir.flatten() {
                    let name = e.file_name();
                    let Some(hash) = name
                        .to_str()
                        .and_then(|n| n.split_once('.'))
                        .and_then(|(h, _)| h.parse().ok())
                    else {
                        continue;
                    };
                    let t = e.metadata().and_then(|m| m.modified()).ok();
                    held.push((t, hash));
                }
            }
            held.sort();
            let held: VecDeque<Hash> = held.into_iter().map(|(_, h)| h).collect();
            let held_set = held.iter().copied().collect();
            streams.insert(
                *id,
                Replicated {
                    store,
                    chain,
                    pending: VecDeque::new(),
                    wanted: HashMap::new(),
                    held,
                    held_set,
                    early_announce: None,
                },
            );
        }
        streams
            .get_mut(id)
            .ok_or_else(|| Error::Malformed("stream state vanished".into()))
    }

    /// Serve the newest pending manifest whose blobs are all held; drop the older ones.
    fn commit_ready(&self, id: &StreamId, r: &mut Replicated) {
        let Some(pos) = r
            .pending
            .iter()
            .rposition(|m| blobs(&m.body).all(|w| r.held_set.contains(&w.hash)))
        else {
            return;
        };
        let m = r.pending.drain(..=pos).next_back();
        let Some(m) = m else { return };
        // Blobs only superseded manifests wanted are no longer worth fetching.
        let still: HashSet<Hash> = r.pending.iter().flat_map(|p| blobs(&p.body).map(|w| w.hash)).collect();
        r.wanted.retain(|h, _| still.contains(h));
        if let Err(e) = r.store.write_manifest(&m) {
            tracing::error!(stream = %id, error = %e, "cannot store MANIFEST_ROOT; not served");
            return;
        }
        let seq = m.body.seq;
        // From signing to every blob verified and stored here.
        let delay_ms = manifest_signer::now_ms().saturating_sub(m.body.time_ms);
        let live: HashSet<Hash> = blobs(&m.body).map(|w| w.hash).collect();
        match self.catalog.offer_manifest(m) {
            Ok(_) => tracing::info!(stream = %id, seq, delay_ms, "replicated MANIFEST_ROOT"),
            Err(e) => tracing::warn!(stream = %id, seq, code = e.code(), error = %e, "replicated manifest refused"),
        }
        if let Some(a) = r.early_announce.take()
            && let Err(e) = self.catalog.offer_announce_wire(id, &a)
        {
            tracing::debug!(stream = %id, code = e.code(), "early announce not used");
        }
        self.prune(r, &live);
    }

    fn prune(&self, r: &mut Replicated, live: &HashSet<Hash>) {
        let pending: HashSet<Hash> = r.pending.iter().flat_map(|p| blobs(&p.body).map(|w| w.hash)).collect();
        let mut kept = VecDeque::new();
        while r.held.len() + kept.len() > self.retain {
            let Some(h) = r.held.pop_front() else { break };
            if live.contains(&h) || pending.contains(&h) {
                kept.push_back(h);
                continue;
            }
            r.held_set.remove(&h);
            for ext in ["m4s", "ts", INIT_EXT] {
                let rel = format!("{SEGMENT_DIR}/{h}.{ext}");
                if r.store.path(&rel).exists() {
                    r.store.remove_blob(&rel);
                }
            }
        }
        while let Some(h) = kept.pop_back() {
            r.held.push_front(h);
        }
    }
}

fn unsolicited(hash: &Hash) -> Error {
    Error::Malformed(format!("blob {hash} is not listed by any manifest this node follows"))
}

/// Every blob a manifest's windows need: each segment, and the init segments they name.
pub fn blobs(m: &ManifestRoot) -> impl Iterator<Item = Wanted> + '_ {
    m.renditions.iter().flat_map(|r| {
        let ext = r.container.media_ext();
        let current = r.init;
        let init = current.map(|i| Wanted {
            hash: i.hash,
            size: i.size,
            ext: INIT_EXT,
        });
        let segs = r.segments.iter().flat_map(move |s| {
            let older_init = s
                .init
                .filter(|h| current.is_none_or(|c| c.hash != *h))
                .map(|hash| Wanted {
                    hash,
                    size: SIZE_UNKNOWN,
                    ext: INIT_EXT,
                });
            let seg = Wanted {
                hash: s.hash,
                size: s.size,
                ext,
            };
            older_init.into_iter().chain(std::iter::once(seg))
        });
        init.into_iter().chain(segs)
    })
}
