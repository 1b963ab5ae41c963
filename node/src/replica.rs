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
//! The archive: the Merkle log of every segment (`log.jsonl`) is replicated too. Entries are
//! taken only when they hash to the log root a served manifest signs: a live manifest's new
//! entries are rebuilt from its window (no fetch), a gap (a late join, a restart) is fetched in
//! chunks from a peer or an HTTP origin ([`Replica::offer_log`]). Once the log matches the
//! newest manifest, the blobs of its newest `retain` entries are wanted too
//! ([`Replica::archive_wanted`]), so a seeder serves the DVR archive as well as the live window.
//!
//! Retention: with the log in step, blobs outside the newest `retain` entries (and every
//! window) leave the disk; before that, blobs out of every window leave once more than
//! `retain` newer blobs have arrived.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use manifest_signer::merkle::{LogEntry, MerkleLog};
use manifest_signer::objects::{Container, INIT_EXT, LogHead};
use manifest_signer::store::{LOG_FILE, SEGMENT_DIR, StreamStore};
use manifest_signer::{Error, Hash, ManifestChain, ManifestRoot, Signed, StreamId};

use crate::catalog::{Catalog, Refused};
use crate::metrics::FailureSource;

/// Manifests waiting for their blobs, per stream. Older ones are dropped first: a newer
/// complete manifest supersedes them.
const MAX_PENDING: usize = 16;

/// `Wanted::size` of an init segment that only a segment's `init` field names.
pub const SIZE_UNKNOWN: u64 = u64::MAX;

/// Most log entries asked for, or answered, in one request.
pub const LOG_CHUNK: usize = 2048;
/// Longest log line taken (an entry is about 250 bytes).
pub const MAX_LOG_LINE: usize = 2048;
/// Longest log gap fetched: the entries wait in memory until they reach a signed root. A longer
/// history is left unreplicated (the live window still is).
const MAX_LOG_GAP: u64 = 1 << 18;
/// Orders tried when rebuilding a manifest's new log entries from its windows.
const MAX_REBUILD_ORDERS: usize = 64;

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

/// Log entries this node lacks: those from `from` up to `to`, the log size of the served
/// manifest `seq` (a peer that served it holds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogNeed {
    pub from: u64,
    pub to: u64,
    pub seq: u64,
}

/// What became of offered log entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogProgress {
    /// Taken, waiting for the rest before the root can be checked.
    Staged(usize),
    /// The log now matches the signed root of this size, on disk.
    Verified(u64),
    /// They do not start where this node's log ends (a late answer); ignored.
    Stale,
}

/// The replicated Merkle log of one stream.
#[derive(Debug, Default)]
struct LogState {
    /// Leaf hashes of the verified entries on disk.
    tree: MerkleLog,
    /// The newest `retain` entries, oldest first, with their log index.
    tail: VecDeque<(u64, LogEntry)>,
    /// Highest logged sequence number per rendition.
    last_seq: HashMap<String, u64>,
    /// Fetched entries waiting to reach `target`, unverified.
    staged: Vec<LogEntry>,
    staged_leaves: Vec<Hash>,
    target: Option<LogHead>,
    /// The log head of the newest served manifest, and its seq.
    head: Option<(LogHead, u64)>,
    warned_gap: bool,
}

impl LogState {
    fn synced(&self) -> bool {
        self.head.is_some_and(|(h, _)| self.tree.len() >= h.size)
    }

    fn push(&mut self, e: LogEntry, leaf: Hash, retain: usize) {
        let index = self.tree.len();
        self.tree.push(leaf);
        let seq = self.last_seq.entry(e.rendition.clone()).or_insert(e.segment.seq);
        *seq = (*seq).max(e.segment.seq);
        self.tail.push_back((index, e));
        while self.tail.len() > retain {
            self.tail.pop_front();
        }
    }

    fn clear_staged(&mut self) {
        self.staged.clear();
        self.staged_leaves.clear();
        self.target = None;
    }
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
    log: LogState,
    /// Blobs of the served manifest's windows.
    live: HashSet<Hash>,
    /// Archive blobs (newest `retain` log entries) this node lacks, with their log index.
    archive: HashMap<Hash, (u64, Wanted)>,
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
        self.offer_manifest_from(id, wire, FailureSource::Peer)
    }

    /// [`Replica::offer_manifest_wire`], a failure counted under `source`.
    pub fn offer_manifest_from(&self, id: &StreamId, wire: &[u8], source: FailureSource) -> Result<Offered, Refused> {
        let m = match Signed::<ManifestRoot>::verify(wire, id) {
            Ok(m) => m,
            Err(e) => {
                self.catalog.metrics().verification_failure(source);
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
                self.catalog.metrics().verification_failure(source);
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

    /// `(served, newest)`: the seq of the manifest served and of the newest verified one known,
    /// while they differ (the newer one's blobs are still missing).
    pub fn superseded(&self, id: &StreamId) -> Option<(u64, u64)> {
        lag(self.lock().get(id)?)
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
        self.lock()
            .get(id)
            .is_some_and(|r| r.wanted.contains_key(hash) || r.archive.contains_key(hash))
    }

    /// Archive blobs this node lacks, newest log entry first, with their log index. Empty
    /// until the log matches the newest served manifest.
    pub fn archive_wanted(&self, id: &StreamId, max: usize) -> Vec<(u64, Wanted)> {
        let streams = self.lock();
        let Some(r) = streams.get(id) else { return Vec::new() };
        let mut out: Vec<(u64, Wanted)> = r.archive.values().copied().collect();
        out.sort_by_key(|(i, w)| (std::cmp::Reverse(*i), w.hash));
        out.truncate(max);
        out
    }

    /// The log entries this node lacks to match its newest served manifest, if any.
    pub fn log_need(&self, id: &StreamId) -> Option<LogNeed> {
        let mut streams = self.lock();
        let r = streams.get_mut(id)?;
        let (head, seq) = r.log.head?;
        let have = r.log.tree.len();
        if have >= head.size {
            return None;
        }
        if head.size - have > MAX_LOG_GAP {
            if !r.log.warned_gap {
                r.log.warned_gap = true;
                tracing::warn!(stream = %id, entries = head.size - have, "the stream's log is too long to replicate; only the live window is carried");
            }
            return None;
        }
        if r.log.target.is_some_and(|t| t.size <= have) {
            r.log.clear_staged();
        }
        let target = *r.log.target.get_or_insert(head);
        Some(LogNeed {
            from: have + r.log.staged.len() as u64,
            to: target.size,
            seq,
        })
    }

    /// Drop fetched log entries not yet verified (the fetcher switches source: entries from
    /// two sources could not tell which one lied).
    pub fn reset_log_staging(&self, id: &StreamId) {
        if let Some(r) = self.lock().get_mut(id) {
            r.log.clear_staged();
        }
    }

    /// Log entries `from..` as JSON lines, from a peer or an HTTP origin. They are held until
    /// they reach the size a served manifest signs, then checked against its log root: a
    /// mismatch drops them all (the source lied) and is an error. Blocking (disk writes).
    pub fn offer_log(&self, id: &StreamId, from: u64, lines: &[u8]) -> Result<LogProgress, Refused> {
        self.offer_log_from(id, from, lines, FailureSource::Peer)
    }

    /// [`Replica::offer_log`], a failure counted under `source`.
    pub fn offer_log_from(
        &self,
        id: &StreamId,
        from: u64,
        lines: &[u8],
        source: FailureSource,
    ) -> Result<LogProgress, Refused> {
        let mut streams = self.lock();
        let Some(r) = streams.get_mut(id) else {
            return Ok(LogProgress::Stale);
        };
        let Some(target) = r.log.target else {
            return Ok(LogProgress::Stale);
        };
        let have = r.log.tree.len();
        if from != have + r.log.staged.len() as u64 || have >= target.size {
            return Ok(LogProgress::Stale);
        }
        let room = (target.size - from) as usize;
        let mut taken = 0;
        for (i, line) in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            if taken == room {
                break;
            }
            let parsed = if line.len() > MAX_LOG_LINE {
                Err(Error::Oversize {
                    what: "log line".into(),
                    actual: line.len() as u64,
                    limit: MAX_LOG_LINE as u64,
                })
            } else {
                serde_json::from_slice::<LogEntry>(line)
                    .map_err(|e| Error::Malformed(format!("log entry {}: {e}", from + i as u64)))
                    .and_then(|e| e.leaf_hash().map(|h| (e, h)))
            };
            let (entry, leaf) = match parsed {
                Ok(x) => x,
                Err(e) => {
                    r.log.clear_staged();
                    self.catalog.metrics().verification_failure(source);
                    return Err(e);
                }
            };
            r.log.staged.push(entry);
            r.log.staged_leaves.push(leaf);
            taken += 1;
        }
        if (r.log.staged.len() as u64) < target.size - have {
            return Ok(LogProgress::Staged(taken));
        }
        if r.log.tree.root_with(&r.log.staged_leaves) != target.root {
            r.log.clear_staged();
            self.catalog.metrics().verification_failure(source);
            return Err(Error::InvalidProof(format!(
                "log entries {have}..{} do not hash to the signed log root",
                target.size
            )));
        }
        let entries = std::mem::take(&mut r.log.staged);
        let leaves = std::mem::take(&mut r.log.staged_leaves);
        r.log.target = None;
        r.store.append_log(&entries).inspect_err(|e| self.store_failed(e))?;
        for (e, leaf) in entries.into_iter().zip(leaves) {
            r.log.push(e, leaf, self.retain);
        }
        tracing::info!(stream = %id, entries = target.size, "replicated the stream's log");
        self.refresh_archive(r);
        let live = r.live.clone();
        self.prune(r, &live);
        Ok(LogProgress::Verified(target.size))
    }

    /// Bytes of a wanted blob: refused unless they hash to its name and have its size. Stores
    /// them, and serves every manifest this completes. Blocking (disk writes).
    pub fn put_blob(&self, id: &StreamId, hash: Hash, bytes: Bytes) -> Result<(), Refused> {
        self.put_blob_from(id, hash, bytes, FailureSource::Peer)
    }

    /// [`Replica::put_blob`], a failure counted under `source`.
    pub fn put_blob_from(&self, id: &StreamId, hash: Hash, bytes: Bytes, source: FailureSource) -> Result<(), Refused> {
        let want = {
            let streams = self.lock();
            let r = streams.get(id).ok_or_else(|| unsolicited(&hash))?;
            if r.held_set.contains(&hash) {
                return Ok(());
            }
            r.wanted
                .get(&hash)
                .or_else(|| r.archive.get(&hash).map(|(_, w)| w))
                .copied()
                .ok_or_else(|| unsolicited(&hash))?
        };
        let size_ok = match want.size {
            // An older init segment a window still names: only its hash is signed.
            SIZE_UNKNOWN => bytes.len() as u64 <= manifest_signer::objects::limits::MAX_INIT_BYTES,
            n => bytes.len() as u64 == n,
        };
        let actual = Hash::of(&bytes);
        if !size_ok || actual != hash {
            self.catalog.metrics().verification_failure(source);
            return Err(Error::HashMismatch {
                what: format!("blob of {} bytes", bytes.len()),
                expected: hash.to_string(),
                actual: actual.to_string(),
            });
        }
        let rel = format!("{SEGMENT_DIR}/{hash}.{}", want.ext);
        let mut streams = self.lock();
        let r = streams.get_mut(id).ok_or_else(|| unsolicited(&hash))?;
        r.store.put_blob(&rel, &bytes).inspect_err(|e| self.store_failed(e))?;
        self.catalog.cache().put(hash, want.ext, bytes);
        r.wanted.remove(&hash);
        r.archive.remove(&hash);
        if r.held_set.insert(hash) {
            r.held.push_back(hash);
        }
        self.commit_ready(id, r);
        Ok(())
    }

    /// A failed write to the data directory (a full disk): counted, as the signer's are.
    fn store_failed(&self, e: &Error) {
        if matches!(e, Error::Io { .. }) {
            self.catalog.metrics().store_write_error();
        }
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
                // Playlists are written unsynced (derived): a crash may have left older ones.
                if let Err(e) = store.write_playlists(&m) {
                    tracing::warn!(stream = %id, code = e.code(), error = %e, "cannot rewrite the playlists");
                }
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
            let head = chain.latest().map(|m| (m.body.log, m.body.seq));
            let mut r = Replicated {
                log: self.open_log(&store, head),
                store,
                chain,
                pending: VecDeque::new(),
                wanted: HashMap::new(),
                held,
                held_set,
                early_announce: None,
                live: HashSet::new(),
                archive: HashMap::new(),
            };
            self.refresh_archive(&mut r);
            streams.insert(*id, r);
        }
        streams
            .get_mut(id)
            .ok_or_else(|| Error::Malformed("stream state vanished".into()))
    }

    /// The log on disk, checked against the stored manifest's signed root. A log that does not
    /// match is set aside (`log.jsonl.bad`) and fetched again.
    fn open_log(&self, store: &StreamStore, head: Option<(LogHead, u64)>) -> LogState {
        let mut log = LogState {
            head,
            ..LogState::default()
        };
        let entries = match store.read_log() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(stream = %store.stream(), error = %e, "cannot read the stored log; fetching it again");
                set_aside_log(store);
                return log;
            }
        };
        let mut leaves = Vec::with_capacity(entries.len());
        for e in &entries {
            match e.leaf_hash() {
                Ok(h) => leaves.push(h),
                Err(_) => {
                    set_aside_log(store);
                    return log;
                }
            }
        }
        let mut tree = MerkleLog::new();
        for h in &leaves {
            tree.push(*h);
        }
        // Entries past the stored manifest were checked against a newer root before the
        // manifest was written; the prefix the stored manifest covers must match it.
        let matches = head.is_none_or(|(h, _)| h.size > tree.len() || tree.root_at(h.size).is_ok_and(|r| r == h.root));
        if !matches {
            tracing::warn!(stream = %store.stream(), "the stored log does not match the stored manifest; fetching it again");
            set_aside_log(store);
            return log;
        }
        for (e, leaf) in entries.into_iter().zip(leaves) {
            log.push(e, leaf, self.retain);
        }
        log
    }

    /// Append the log entries a newly served manifest adds, rebuilt from its windows: with one
    /// segment per manifest (how `hlswarm run` signs) they are the segments newer than the
    /// log's last ones. Kept only if they hash to the manifest's signed log root; otherwise the
    /// gap is fetched ([`Replica::log_need`]).
    fn extend_log_from_window(&self, id: &StreamId, r: &mut Replicated, m: &ManifestRoot) {
        let have = r.log.tree.len();
        if !r.log.staged.is_empty() || have >= m.log.size {
            return;
        }
        let need = (m.log.size - have) as usize;
        // Per rendition, the window's segments the log lacks, in order.
        let runs: Vec<Vec<LogEntry>> = m
            .renditions
            .iter()
            .map(|rend| {
                let last = r.log.last_seq.get(&rend.name).copied();
                rend.segments
                    .iter()
                    .filter(|s| last.is_none_or(|l| s.seq > l))
                    .map(|s| LogEntry {
                        rendition: rend.name.clone(),
                        segment: s.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|run| !run.is_empty())
            .collect();
        if runs.iter().map(Vec::len).sum::<usize>() != need {
            return;
        }
        let Ok(leaves) = runs
            .iter()
            .map(|run| run.iter().map(LogEntry::leaf_hash).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        let mut tried = 0;
        let Some(order) = find_interleaving(&leaves, &mut Vec::new(), &mut vec![0; runs.len()], &mut tried, |cand| {
            let cand: Vec<Hash> = cand.iter().map(|&(run, i)| leaves[run][i]).collect();
            r.log.tree.root_with(&cand) == m.log.root
        }) else {
            tracing::debug!(stream = %id, seq = m.seq, "new log entries not rebuilt from the window; fetching them");
            return;
        };
        let entries: Vec<LogEntry> = order.iter().map(|&(run, i)| runs[run][i].clone()).collect();
        if let Err(e) = r.store.append_log(&entries) {
            self.store_failed(&e);
            tracing::error!(stream = %id, error = %e, "cannot append to the stored log");
            return;
        }
        for (e, (run, i)) in entries.into_iter().zip(order) {
            r.log.push(e, leaves[run][i], self.retain);
        }
        r.log.target = None;
    }

    /// Recompute the archive blobs wanted: those of the newest `retain` log entries this node
    /// lacks, once the log matches the newest served manifest.
    fn refresh_archive(&self, r: &mut Replicated) {
        r.archive.clear();
        if !r.log.synced() {
            return;
        }
        for (index, e) in &r.log.tail {
            let s = &e.segment;
            let container = if s.init.is_some() {
                Container::Fmp4
            } else {
                Container::Ts
            };
            let seg = Wanted {
                hash: s.hash,
                size: s.size,
                ext: container.media_ext(),
            };
            let init = s.init.map(|hash| Wanted {
                hash,
                size: SIZE_UNKNOWN,
                ext: INIT_EXT,
            });
            for w in init.into_iter().chain(std::iter::once(seg)) {
                if !r.held_set.contains(&w.hash) && !r.wanted.contains_key(&w.hash) {
                    r.archive.entry(w.hash).or_insert((*index, w));
                }
            }
        }
    }

    /// Serve the newest pending manifest whose blobs are all held; drop the older ones. Then
    /// tell the catalog whether the served one still lags (see [`crate::lag`]).
    fn commit_ready(&self, id: &StreamId, r: &mut Replicated) {
        self.commit_newest_ready(id, r);
        self.catalog.note_lag(id, lag(r));
    }

    fn commit_newest_ready(&self, id: &StreamId, r: &mut Replicated) {
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
        self.extend_log_from_window(id, r, &m.body);
        if let Err(e) = r.store.write_manifest(&m) {
            self.store_failed(&e);
            tracing::error!(stream = %id, error = %e, "cannot store MANIFEST_ROOT; not served");
            return;
        }
        let seq = m.body.seq;
        // From signing to every blob verified and stored here.
        let delay_ms = manifest_signer::now_ms().saturating_sub(m.body.time_ms);
        let live: HashSet<Hash> = blobs(&m.body).map(|w| w.hash).collect();
        r.log.head = Some((m.body.log, m.body.seq));
        r.live = live.clone();
        match self.catalog.offer_manifest(m) {
            Ok(_) => tracing::info!(stream = %id, seq, delay_ms, "replicated MANIFEST_ROOT"),
            Err(e) => tracing::warn!(stream = %id, seq, code = e.code(), error = %e, "replicated manifest refused"),
        }
        if let Some(a) = r.early_announce.take()
            && let Err(e) = self.catalog.offer_announce_wire(id, &a)
        {
            tracing::debug!(stream = %id, code = e.code(), "early announce not used");
        }
        self.refresh_archive(r);
        self.prune(r, &live);
    }

    fn prune(&self, r: &mut Replicated, live: &HashSet<Hash>) {
        let pending: HashSet<Hash> = r.pending.iter().flat_map(|p| blobs(&p.body).map(|w| w.hash)).collect();
        if r.log.synced() {
            // The log says which blobs are the newest `retain`: keep those, whenever they came.
            let archive: HashSet<Hash> = r
                .log
                .tail
                .iter()
                .flat_map(|(_, e)| e.segment.init.into_iter().chain(std::iter::once(e.segment.hash)))
                .collect();
            let keep = |h: &Hash| live.contains(h) || pending.contains(h) || archive.contains(h);
            let (kept, gone): (VecDeque<Hash>, VecDeque<Hash>) = r.held.drain(..).partition(|h| keep(h));
            r.held = kept;
            for h in gone {
                r.held_set.remove(&h);
                remove_blob_files(&r.store, &h);
            }
            return;
        }
        let mut kept = VecDeque::new();
        while r.held.len() + kept.len() > self.retain {
            let Some(h) = r.held.pop_front() else { break };
            if live.contains(&h) || pending.contains(&h) {
                kept.push_back(h);
                continue;
            }
            r.held_set.remove(&h);
            remove_blob_files(&r.store, &h);
        }
        while let Some(h) = kept.pop_back() {
            r.held.push_front(h);
        }
    }
}

fn remove_blob_files(store: &StreamStore, h: &Hash) {
    for ext in ["m4s", "ts", INIT_EXT] {
        let rel = format!("{SEGMENT_DIR}/{h}.{ext}");
        if store.path(&rel).exists() {
            store.remove_blob(&rel);
        }
    }
}

fn set_aside_log(store: &StreamStore) {
    let path = store.path(LOG_FILE);
    if path.exists()
        && let Err(e) = std::fs::rename(&path, store.path(&format!("{LOG_FILE}.bad")))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot set the stored log aside");
    }
}

/// Depth-first over the interleavings of `runs` (each kept in order) until `accept` takes one;
/// at most [`MAX_REBUILD_ORDERS`] complete orders are tried.
fn find_interleaving(
    runs: &[Vec<Hash>],
    order: &mut Vec<(usize, usize)>,
    next: &mut Vec<usize>,
    tried: &mut usize,
    accept: impl Fn(&[(usize, usize)]) -> bool + Copy,
) -> Option<Vec<(usize, usize)>> {
    if *tried >= MAX_REBUILD_ORDERS {
        return None;
    }
    if (0..runs.len()).all(|k| next[k] == runs[k].len()) {
        *tried += 1;
        return accept(order).then(|| order.clone());
    }
    for k in 0..runs.len() {
        if next[k] < runs[k].len() {
            order.push((k, next[k]));
            next[k] += 1;
            let found = find_interleaving(runs, order, next, tried, accept);
            next[k] -= 1;
            order.pop();
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

fn unsolicited(hash: &Hash) -> Error {
    Error::Malformed(format!("blob {hash} is not listed by any manifest this node follows"))
}

/// `(served, newest)` while the served manifest is older than the newest verified one.
fn lag(r: &Replicated) -> Option<(u64, u64)> {
    let newest = r.chain.latest()?.body.seq;
    let (_, served) = r.log.head?;
    (newest > served).then_some((served, newest))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use manifest_signer::signer::{NewSegment, RenditionInfo, SignerConfig, StreamSigner};
    use manifest_signer::{Container, StreamKey};

    use super::*;
    use crate::metrics::Metrics;

    fn segment(rendition: &str, i: u8) -> NewSegment {
        NewSegment {
            rendition: rendition.into(),
            container: Container::Fmp4,
            data: Arc::from(vec![i; 1000 + usize::from(i)]),
            init: Some(Arc::from(rendition.as_bytes().repeat(50))),
            duration_us: 1_000_000,
            discontinuity: false,
            independent: true,
            pdt_ms: None,
            info: RenditionInfo::default(),
        }
    }

    /// Follow `signer`'s latest manifest the way a seeder does: offer it, then its blobs.
    fn follow(replica: &Replica, signer: &StreamSigner) {
        let m = signer.latest().unwrap();
        let id = signer.stream_id();
        if let Offered::New { wanted, .. } = replica.offer_manifest_wire(&id, m.wire()).unwrap() {
            for w in wanted {
                let rel = if w.ext == INIT_EXT {
                    manifest_signer::playlist::init_path(&w.hash)
                } else {
                    format!("{SEGMENT_DIR}/{}.{}", w.hash, w.ext)
                };
                let bytes = signer.store().read_blob(&rel).unwrap();
                replica.put_blob(&id, w.hash, Bytes::from(bytes)).unwrap();
            }
        }
    }

    #[test]
    fn a_followed_ladder_keeps_its_log_in_step_without_fetching() {
        let (odir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cfg = SignerConfig {
            window: 4,
            retain_segments: None,
            target_duration: 1,
            parts: false,
        };
        let mut signer = StreamSigner::open(StreamKey::from_seed([9; 32]), odir.path(), cfg).unwrap();
        let id = signer.stream_id();
        let catalog = Arc::new(Catalog::new(sdir.path(), 8 << 20, Arc::new(Metrics::default())));
        let replica = Replica::new(sdir.path(), catalog, 0);
        // Two renditions signed one segment at a time, in an order that is not fixed (as
        // segments of a ladder finish), some manifests seen, some skipped.
        let order = ["hi", "lo", "lo", "hi", "hi", "lo", "hi", "lo", "lo", "hi"];
        for (i, r) in order.iter().enumerate() {
            signer.publish(vec![segment(r, u8::try_from(i).unwrap())]).unwrap();
            if i % 3 != 1 {
                follow(&replica, &signer);
                assert_eq!(replica.log_need(&id), None, "in step after manifest {i}");
            }
        }
        follow(&replica, &signer);
        let logged = StreamStore::open(sdir.path(), id).unwrap().read_log().unwrap();
        assert_eq!(logged, signer.store().read_log().unwrap());
    }

    #[test]
    fn a_gap_is_fetched_checked_against_the_signed_root_and_tampering_refused() {
        let (odir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cfg = SignerConfig {
            window: 3,
            retain_segments: None,
            target_duration: 1,
            parts: false,
        };
        let mut signer = StreamSigner::open(StreamKey::from_seed([8; 32]), odir.path(), cfg).unwrap();
        let id = signer.stream_id();
        for i in 0..10 {
            signer.publish(vec![segment("src", i)]).unwrap();
        }
        let catalog = Arc::new(Catalog::new(sdir.path(), 8 << 20, Arc::new(Metrics::default())));
        let replica = Replica::new(sdir.path(), catalog, 0);
        follow(&replica, &signer);
        // Joined late: 7 entries are older than the window.
        let need = replica.log_need(&id).unwrap();
        assert_eq!(
            need,
            LogNeed {
                from: 0,
                to: 10,
                seq: 9
            }
        );
        assert!(
            replica.archive_wanted(&id, 100).is_empty(),
            "no archive before the log is checked"
        );
        let log = std::fs::read(odir.path().join("streams").join(id.to_string()).join(LOG_FILE)).unwrap();
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        // A tampered entry: everything staged is dropped, the error says why.
        let mut bad = lines[..4].join(&b'\n');
        let at = bad.windows(8).position(|w| w == b"\"dur_us\"").unwrap() + 9;
        bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
        assert_eq!(replica.offer_log(&id, 0, &bad).unwrap(), LogProgress::Staged(4));
        let rest = lines[4..].join(&b'\n');
        let e = replica.offer_log(&id, 4, &rest).unwrap_err();
        assert_eq!(e.code(), "invalid_proof", "{e}");
        assert_eq!(replica.log_need(&id).unwrap().from, 0, "staging dropped");
        // Junk is refused at once; a late chunk is stale.
        assert_eq!(
            replica.offer_log(&id, 0, b"{\"not\":1}\n").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(replica.offer_log(&id, 5, &rest).unwrap(), LogProgress::Stale);
        // The true log, in two chunks (asked for after `log_need`, as the fetchers do).
        assert_eq!(
            replica.log_need(&id),
            Some(LogNeed {
                from: 0,
                to: 10,
                seq: 9
            })
        );
        assert_eq!(
            replica.offer_log(&id, 0, &lines[..6].join(&b'\n')).unwrap(),
            LogProgress::Staged(6)
        );
        assert_eq!(
            replica.offer_log(&id, 6, &lines[6..].join(&b'\n')).unwrap(),
            LogProgress::Verified(10)
        );
        assert_eq!(replica.log_need(&id), None);
        // The archive: the 7 older segments, newest first (the init is held already).
        let archive = replica.archive_wanted(&id, 100);
        let indexes: Vec<u64> = archive.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![6, 5, 4, 3, 2, 1, 0]);
        for (_, w) in archive {
            let bytes = signer
                .store()
                .read_blob(&format!("{SEGMENT_DIR}/{}.{}", w.hash, w.ext))
                .unwrap();
            replica.put_blob(&id, w.hash, Bytes::from(bytes)).unwrap();
        }
        assert!(replica.archive_wanted(&id, 100).is_empty());
        // A restart reads the log back and checks it against the stored manifest.
        let catalog = Arc::new(Catalog::new(sdir.path(), 8 << 20, Arc::new(Metrics::default())));
        let again = Replica::new(sdir.path(), catalog, 0);
        follow(&again, &signer);
        assert_eq!(again.log_need(&id), None);
        assert!(again.archive_wanted(&id, 100).is_empty());
    }
}
