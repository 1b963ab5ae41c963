//! The streams this node serves: for each, the latest verified MANIFEST_ROOT with its playlists
//! rendered once, the latest STREAM_ANNOUNCE, a viewer count, plus a bounded in-memory cache of
//! recently signed segments.
//!
//! Writers (the signer loop today, the swarm later) offer signed objects; the catalog accepts
//! only what passes the chain rules (PROTOCOL §8) and publishes an immutable [`StreamView`]
//! snapshot that HTTP handlers clone by `Arc` without holding a lock while they respond.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use manifest_signer::playlist;
use manifest_signer::store::{self, ANNOUNCE_FILE, MANIFEST_FILE};
use manifest_signer::{AnnounceSlot, Hash, ManifestChain, ManifestRoot, Signed, StreamAnnounce, StreamId};

use crate::metrics::{FailureSource, Metrics};

/// A viewer counts while it fetched a playlist or manifest within this time.
const VIEWER_TTL: Duration = Duration::from_secs(30);
/// Viewers remembered per stream (beyond this, new viewers are not counted).
const MAX_VIEWERS_PER_STREAM: usize = 100_000;

/// A rendered playlist with its validator.
#[derive(Debug, Clone)]
pub struct Playlist {
    pub bytes: Bytes,
    pub etag: String,
}

impl Playlist {
    fn new(text: String) -> Self {
        let etag = format!("\"{}\"", &blake3::hash(text.as_bytes()).to_hex()[..32]);
        Playlist {
            bytes: Bytes::from(text),
            etag,
        }
    }
}

/// One stream as served now: an immutable snapshot.
#[derive(Debug)]
pub struct StreamView {
    pub id: StreamId,
    pub dir: PathBuf,
    pub manifest: Signed<ManifestRoot>,
    pub manifest_wire: Bytes,
    pub master: Playlist,
    pub media: HashMap<String, Playlist>,
    pub announce: Option<Signed<StreamAnnounce>>,
    pub announce_wire: Option<Bytes>,
}

impl StreamView {
    pub fn ended(&self) -> bool {
        !self.manifest.body.renditions.is_empty() && self.manifest.body.renditions.iter().all(|r| r.ended)
    }

    pub fn title(&self) -> Option<&str> {
        self.announce.as_ref().map(|a| a.body.title.as_str())
    }
}

#[derive(Debug)]
struct StreamState {
    chain: ManifestChain,
    announce: AnnounceSlot,
    view: Option<Arc<StreamView>>,
    viewers: Mutex<HashMap<u64, Instant>>,
    bytes_out: AtomicU64,
}

#[derive(Debug)]
pub struct Catalog {
    data_dir: PathBuf,
    streams: RwLock<HashMap<StreamId, StreamState>>,
    cache: SegmentCache,
    metrics: Arc<Metrics>,
    updates: tokio::sync::broadcast::Sender<Arc<StreamView>>,
    /// What the ingest advises the broadcaster to change in the current publish (shown on
    /// the dashboard; each also logged once).
    publisher_advice: Mutex<Vec<String>>,
    /// Followed streams whose served manifest lags a newer verified one (set by the replica).
    lag: Mutex<crate::lag::Lag>,
    /// Signed parts for LL-HLS: the origin's own, and those a follower verified.
    parts: crate::parts::PartStore,
}

/// Updates a slow subscriber may fall behind by before it misses some (it then sees `Lagged`
/// and can re-read the catalog).
const UPDATES_BACKLOG: usize = 256;

/// Why a signed object was not taken.
pub type Refused = manifest_signer::Error;

impl Catalog {
    pub fn new(data_dir: &Path, cache_bytes: u64, metrics: Arc<Metrics>) -> Self {
        Catalog {
            data_dir: data_dir.to_path_buf(),
            streams: RwLock::new(HashMap::new()),
            cache: SegmentCache::new(cache_bytes),
            metrics,
            updates: tokio::sync::broadcast::channel(UPDATES_BACKLOG).0,
            publisher_advice: Mutex::new(Vec::new()),
            lag: Mutex::new(crate::lag::Lag::default()),
            parts: crate::parts::PartStore::new(),
        }
    }

    pub fn parts(&self) -> &crate::parts::PartStore {
        &self.parts
    }

    /// Replaces the advice for the broadcaster (the source rendition's, of the current publish).
    pub fn set_publisher_advice(&self, advice: &[String]) {
        let mut held = self.publisher_advice.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_slice() != advice {
            advice.clone_into(&mut held);
        }
    }

    /// The replica's view of a followed stream: `Some((served, newest))` while the served
    /// manifest is older than the newest verified one.
    pub fn note_lag(&self, id: &StreamId, lag: Option<(u64, u64)>) {
        let mut l = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        l.note(id, lag, Instant::now());
    }

    /// Whether `id`'s served manifest has lagged a newer known one for [`crate::lag::STALE_AFTER`]:
    /// its manifest and playlists are then not served as live (logged once per episode).
    pub fn stale(&self, id: &StreamId) -> Option<crate::lag::Stale> {
        let s = self
            .lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stale(id, Instant::now())?;
        if s.first {
            tracing::warn!(stream = %id, served = s.served, newest = s.newest, "a newer manifest is known but its segments cannot be fetched from any source; answering 503 for the manifest and playlists until they are");
        }
        Some(s)
    }

    pub fn publisher_advice(&self) -> Vec<String> {
        self.publisher_advice.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every view the catalog publishes from now on: a newly accepted manifest, or a new
    /// announce for a stream. The transports (swarm, MoQ) forward what they receive here.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<StreamView>> {
        self.updates.subscribe()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Load every stream in DATA_DIR/streams whose manifest verifies under its directory's
    /// name. A stream that does not verify is skipped, logged and counted: never served.
    pub fn load_from_disk(&self) -> usize {
        let root = self.data_dir.join("streams");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return 0;
        };
        let mut loaded = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(Ok(id)) = name.to_str().map(str::parse::<StreamId>) else {
                continue;
            };
            let dir = store::stream_dir(&self.data_dir, &id);
            let wire = match std::fs::read(dir.join(MANIFEST_FILE)) {
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "cannot read manifest; stream not served");
                    continue;
                }
            };
            match Signed::<ManifestRoot>::verify(&wire, &id) {
                Ok(m) => {
                    if let Err(e) = self.offer_manifest(m) {
                        tracing::warn!(stream = %id, code = e.code(), error = %e, "stored manifest refused");
                        continue;
                    }
                }
                Err(e) => {
                    self.metrics.verification_failure(FailureSource::Disk);
                    tracing::warn!(stream = %id, code = e.code(), error = %e, "stored manifest does not verify; stream not served");
                    continue;
                }
            }
            if let Ok(a) = std::fs::read(dir.join(ANNOUNCE_FILE))
                && let Err(e) = self.offer_announce_wire(&id, &a)
            {
                if e.code() != "expired" {
                    self.metrics.verification_failure(FailureSource::Disk);
                }
                tracing::info!(stream = %id, code = e.code(), error = %e, "stored announce not used");
            }
            loaded += 1;
        }
        loaded
    }

    /// Take a verified manifest if it extends the stream's chain; render its playlists.
    pub fn offer_manifest(&self, m: Signed<ManifestRoot>) -> Result<Arc<StreamView>, Refused> {
        let id = m.body.stream;
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        let state = streams.entry(id).or_insert_with(|| StreamState {
            chain: ManifestChain::new(id),
            announce: AnnounceSlot::new(id),
            view: None,
            viewers: Mutex::new(HashMap::new()),
            bytes_out: AtomicU64::new(0),
        });
        if let Err(e) = state.chain.accept(m.clone()) {
            self.metrics.verification_failure(FailureSource::Chain);
            return Err(e);
        }
        let view = Arc::new(self.render(id, m, state.announce.latest().cloned()));
        state.view = Some(view.clone());
        let _ = self.updates.send(view.clone());
        self.parts.notify();
        Ok(view)
    }

    /// Take announce wire bytes: verified, fresh, and newer than the one held.
    pub fn offer_announce_wire(&self, id: &StreamId, wire: &[u8]) -> Result<(), Refused> {
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        let Some(state) = streams.get_mut(id) else {
            return Err(manifest_signer::Error::Malformed(
                "announce for a stream with no manifest".into(),
            ));
        };
        let a = state.announce.accept_wire(wire, manifest_signer::now_ms())?;
        if let Some(view) = &state.view {
            let next = Arc::new(self.render(*id, view.manifest.clone(), Some(a)));
            state.view = Some(next.clone());
            let _ = self.updates.send(next);
        }
        Ok(())
    }

    fn render(&self, id: StreamId, m: Signed<ManifestRoot>, announce: Option<Signed<StreamAnnounce>>) -> StreamView {
        let master = Playlist::new(playlist::render_master(&m.body));
        let media = m
            .body
            .renditions
            .iter()
            .map(|r| {
                (
                    playlist::media_playlist_name(&r.name),
                    Playlist::new(playlist::render_media(r)),
                )
            })
            .collect();
        StreamView {
            id,
            dir: store::stream_dir(&self.data_dir, &id),
            manifest_wire: Bytes::copy_from_slice(m.wire()),
            announce_wire: announce.as_ref().map(|a| Bytes::copy_from_slice(a.wire())),
            manifest: m,
            master,
            media,
            announce,
        }
    }

    pub fn get(&self, id: &StreamId) -> Option<Arc<StreamView>> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams.get(id).and_then(|s| s.view.clone())
    }

    /// Every stream with a manifest, newest first.
    pub fn list(&self) -> Vec<Arc<StreamView>> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = streams.values().filter_map(|s| s.view.clone()).collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.manifest.body.time_ms));
        v
    }

    /// Note a viewer (a page's random id, or the client address) of a stream.
    pub fn saw_viewer(&self, id: &StreamId, viewer: &str) {
        let key = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            BuildHasherDefault::<DefaultHasher>::default().hash_one(viewer)
        };
        let now = Instant::now();
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        let Some(state) = streams.get(id) else { return };
        let mut viewers = state.viewers.lock().unwrap_or_else(|p| p.into_inner());
        if viewers.len() >= MAX_VIEWERS_PER_STREAM && !viewers.contains_key(&key) {
            viewers.retain(|_, t| now.duration_since(*t) < VIEWER_TTL);
            if viewers.len() >= MAX_VIEWERS_PER_STREAM {
                return;
            }
        }
        viewers.insert(key, now);
    }

    /// The stream named by `id` as written in a URL, without the cost of checking that it is a
    /// valid curve point: only valid ids are in the catalog, so a miss is simply "not here".
    /// `Err` when `id` is not even shaped like a stream id.
    pub(crate) fn get_by_name(&self, id: &str) -> Result<Option<Arc<StreamView>>, ()> {
        let sid = parse_shape(id).ok_or(())?;
        Ok(self.get(&sid))
    }

    /// Count body bytes sent for a stream (any transport).
    pub fn add_bytes_out(&self, id: &StreamId, bytes: u64) {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = streams.get(id) {
            s.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub fn bytes_out(&self, id: &StreamId) -> u64 {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams.get(id).map_or(0, |s| s.bytes_out.load(Ordering::Relaxed))
    }

    /// Current viewers per stream (seen within the last 30 s).
    pub fn viewers(&self) -> Vec<(StreamId, usize)> {
        let now = Instant::now();
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams
            .iter()
            .map(|(id, s)| {
                let mut v = s.viewers.lock().unwrap_or_else(|p| p.into_inner());
                v.retain(|_, t| now.duration_since(*t) < VIEWER_TTL);
                (*id, v.len())
            })
            .collect()
    }

    pub fn cache(&self) -> &SegmentCache {
        &self.cache
    }
}

/// A stream id's 32 bytes if `s` is 43 characters of unpadded base64url in canonical form; the
/// curve point is not checked (see [`Catalog::get_by_name`]).
pub fn parse_shape(s: &str) -> Option<StreamId> {
    use base64::Engine;
    if s.len() != 43 {
        return None;
    }
    let mut out = [0u8; 32];
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(s, &mut out)
        .ok()?;
    let id = StreamId(out);
    (n == 32 && id.to_string() == s).then_some(id)
}

/// Recently signed (or read) segments by hash, bounded in bytes, oldest evicted first: live
/// viewers all ask for the newest few segments, so first-in-first-out is as good as LRU here.
#[derive(Debug)]
pub struct SegmentCache {
    cap: u64,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<Hash, (&'static str, Bytes)>,
    order: VecDeque<Hash>,
    bytes: u64,
}

impl SegmentCache {
    pub fn new(cap: u64) -> Self {
        SegmentCache {
            cap,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The bytes and file extension (`m4s`, `ts`, `mp4`) of a segment, if held.
    pub fn get(&self, hash: &Hash) -> Option<(&'static str, Bytes)> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(hash)
            .cloned()
    }

    /// Keep `data` (whose BLAKE3 the caller has checked is `hash`). Larger than a quarter of the
    /// cache: not kept.
    pub fn put(&self, hash: Hash, ext: &'static str, data: Bytes) {
        let len = data.len() as u64;
        if len > self.cap / 4 {
            return;
        }
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.map.contains_key(&hash) {
            return;
        }
        while c.bytes + len > self.cap {
            let Some(old) = c.order.pop_front() else { break };
            if let Some((_, b)) = c.map.remove(&old) {
                c.bytes -= b.len() as u64;
            }
        }
        c.bytes += len;
        c.order.push_back(hash);
        c.map.insert(hash, (ext, data));
    }

    pub fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_in_urls_need_the_canonical_shape() {
        let id = manifest_signer::StreamKey::from_seed([3; 32]).stream_id();
        let text = id.to_string();
        assert_eq!(parse_shape(&text), Some(id));
        assert_eq!(parse_shape(&text[..42]), None);
        assert_eq!(parse_shape(&format!("{text}A")), None);
        assert_eq!(parse_shape(&"+".repeat(43)), None);
        // The last character carries 2 unused bits: another spelling of the same bytes is refused.
        let last = text.as_bytes()[42];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap_or(0);
        let mut other = text.clone().into_bytes();
        other[42] = alphabet[pos ^ 1];
        assert_eq!(parse_shape(std::str::from_utf8(&other).unwrap_or("")), None);
    }

    #[test]
    fn cache_is_bounded_and_evicts_oldest_first() {
        let c = SegmentCache::new(100);
        let h = |i: u8| Hash::of(&[i]);
        c.put(h(1), "m4s", Bytes::from(vec![0; 20]));
        c.put(h(2), "m4s", Bytes::from(vec![0; 20]));
        c.put(h(3), "m4s", Bytes::from(vec![0; 30])); // more than cap/4: not kept
        assert!(c.get(&h(3)).is_none());
        for i in 4..10 {
            c.put(h(i), "m4s", Bytes::from(vec![0; 20]));
        }
        assert!(c.bytes() <= 100);
        assert!(c.get(&h(1)).is_none(), "oldest evicted");
        assert!(c.get(&h(9)).is_some(), "newest kept");
    }
}
