//! The signer: turns finished segments into a new signed MANIFEST_ROOT, persisting everything
//! before it returns, and resumes after a restart without reusing a sequence number.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use crate::bandwidth::{BandwidthMeter, Sample};
use crate::merkle::{LogEntry, MerkleLog};
use crate::objects::{
    AnnounceRendition, BlobRef, Container, Hints, LogHead, ManifestRoot, Rendition, RenditionKind, SegmentRef, Signed,
    StreamAnnounce, check_rendition_name, limits,
};
use crate::part::SignedPart;
pub use crate::part_signer::NewPart;
use crate::part_signer::PartSigner;
use crate::playlist::{init_path, segment_path};
use crate::store::StreamStore;
use crate::{Error, Hash, Result, StreamId, StreamKey, now_ms};

/// How the signer shapes manifests.
#[derive(Clone, Debug)]
pub struct SignerConfig {
    /// Segments per rendition in the live window.
    pub window: usize,
    /// Archive (DVR) segments kept on disk per stream, counting the window; older ones are deleted
    /// (the log keeps their entries). `None` keeps everything.
    pub retain_segments: Option<usize>,
    /// Target duration when the source does not give one, seconds.
    pub target_duration: u64,
    /// The stream has signed parts ([`StreamSigner::sign_part`]). After a restart each
    /// rendition then resumes one media sequence number further on, in a fresh window: the
    /// parts of a segment in progress at a crash were signed under the number that segment
    /// would have had, and a new segment under it would equivocate.
    pub parts: bool,
}

impl Default for SignerConfig {
    fn default() -> Self {
        SignerConfig {
            window: 8,
            retain_segments: Some(1800),
            target_duration: 2,
            parts: false,
        }
    }
}

/// What the source knows about a rendition (all optional, all shown in the master playlist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenditionInfo {
    pub codecs: Option<String>,
    pub resolution: Option<String>,
    pub frame_rate_milli: Option<u64>,
    /// A declared peak bit rate to sign as BANDWIDTH instead of the measurement. `None` (what
    /// the node and the watcher pass): measured from the signed segments per RFC 8216
    /// §4.3.4.2 (crate::bandwidth), with AVERAGE-BANDWIDTH beside it.
    pub bandwidth: Option<u64>,
    pub target_duration: Option<u64>,
    /// `Some(Audio)`: this rendition is the stream's audio, a separate rendition that every
    /// video rendition plays with (`EXT-X-MEDIA:TYPE=AUDIO`, protocol 1.4). Pass it only when
    /// audio and video are demuxed: a rendition holding both stays `None`.
    pub kind: Option<RenditionKind>,
    /// Audio channel count for CHANNELS (1..=64), only together with `kind: Some(Audio)`:
    /// otherwise `publish` refuses the batch (`malformed`) before storing anything.
    pub channels: Option<u32>,
    /// `PART-TARGET` (microseconds) of an fMP4 rendition whose parts are signed
    /// ([`StreamSigner::sign_part`]), signed into the rendition (protocol 1.5) so that every
    /// node renders the same LL-HLS playlist. `None` for a rendition without parts.
    pub part_target_us: Option<u64>,
}

/// A finished segment handed to the signer.
#[derive(Clone, Debug)]
pub struct NewSegment {
    pub rendition: String,
    pub container: Container,
    pub data: Arc<[u8]>,
    /// The init segment this segment needs (fMP4 only).
    pub init: Option<Arc<[u8]>>,
    pub duration_us: u64,
    pub discontinuity: bool,
    /// It begins with a keyframe (see `SegmentRef::independent`). Packagers that cut only at
    /// keyframes (ffmpeg's hls muxer, nginx-rtmp, MediaMTX) always pass true.
    pub independent: bool,
    pub pdt_ms: Option<u64>,
    pub info: RenditionInfo,
}

fn next_seqs(entries: &[LogEntry]) -> HashMap<String, u64> {
    let mut next = HashMap::new();
    for e in entries {
        let n = next.entry(e.rendition.clone()).or_insert(0);
        *n = (*n).max(e.segment.seq + 1);
    }
    next
}

fn sample(dur_us: u64, bytes: u64) -> Sample {
    Sample { dur_us, bytes }
}

fn check_segment(seg: &NewSegment) -> Result<()> {
    check_rendition_name(&seg.rendition)?;
    if seg.data.len() as u64 > limits::MAX_SEGMENT_BYTES {
        return Err(Error::oversize(
            "segment",
            seg.data.len(),
            limits::MAX_SEGMENT_BYTES as usize,
        ));
    }
    if seg.duration_us == 0 || seg.duration_us > limits::MAX_TARGET_DURATION_S * 1_000_000 {
        return Err(Error::Malformed(format!(
            "segment duration {} us is outside (0, 60 s]",
            seg.duration_us
        )));
    }
    if let Some(ch) = seg.info.channels {
        // What validate() would refuse at signing, refused before anything is stored or logged.
        if seg.info.kind != Some(RenditionKind::Audio) {
            return Err(Error::Malformed(format!(
                "rendition {:?}: channels without kind audio",
                seg.rendition
            )));
        }
        if ch == 0 || u64::from(ch) > limits::MAX_CHANNELS {
            return Err(Error::Malformed(format!(
                "rendition {:?}: channels {ch} outside 1..=64",
                seg.rendition
            )));
        }
    }
    if seg.info.part_target_us.is_some() {
        let mut r = Rendition::new(seg.rendition.clone(), seg.container, 1);
        r.part_target_us = seg.info.part_target_us;
        crate::objects::check_part_target(&r)?;
    }
    match (&seg.init, seg.container) {
        (Some(bytes), Container::Fmp4) if bytes.len() as u64 > limits::MAX_INIT_BYTES => Err(Error::oversize(
            "init segment",
            bytes.len(),
            limits::MAX_INIT_BYTES as usize,
        )),
        (Some(_), Container::Fmp4) | (None, Container::Ts) => Ok(()),
        _ => Err(Error::Malformed(
            "fmp4 segments need an init segment, ts segments have none".into(),
        )),
    }
}

/// Owns one stream's signing state. One per stream, one owner.
#[derive(Debug)]
pub struct StreamSigner {
    key: StreamKey,
    store: StreamStore,
    cfg: SignerConfig,
    latest: Option<Signed<ManifestRoot>>,
    renditions: Vec<Rendition>,
    log: MerkleLog,
    /// Entries whose blobs are still on disk, oldest first.
    retained: VecDeque<LogEntry>,
    refs: HashMap<Hash, usize>,
    /// Renditions whose next segment starts a discontinuity (after a restart of the signer).
    pending_disc: HashSet<String>,
    /// Next media sequence number per rendition: above everything in the log, even entries a
    /// crash left unsigned, so no number is ever used twice.
    next_seq: HashMap<String, u64>,
    /// BANDWIDTH/AVERAGE-BANDWIDTH per rendition since it (re)started; after a restart, from
    /// the stored window.
    meters: HashMap<String, BandwidthMeter>,
    announce_seq: Option<u64>,
    /// Summed segment durations per rendition over the whole log, microseconds.
    logged_us: HashMap<String, u64>,
    /// The PART chains of the segments in progress.
    parts: PartSigner,
    /// Renditions whose next segment starts a fresh window (after a restart with parts).
    fresh_window: HashSet<String>,
}

impl StreamSigner {
    /// Open the stream of `key` under `data_dir`, resuming from what is stored there.
    pub fn open(key: StreamKey, data_dir: &Path, cfg: SignerConfig) -> Result<Self> {
        let store = StreamStore::open(data_dir, key.stream_id())?;
        let latest = store.read_manifest()?;
        let entries = store.read_log()?;
        let mut log = MerkleLog::new();
        for e in &entries {
            log.push(e.leaf_hash()?);
        }
        if let Some(m) = &latest {
            let head = m.body.log;
            let ok = head.size <= log.len() && log.root_at(head.size)? == head.root;
            if !ok {
                return Err(Error::Store {
                    path: store.path(crate::store::LOG_FILE),
                    reason: format!(
                        "the log ({} entries) does not match the signed manifest {} (log size {})",
                        log.len(),
                        m.body.seq,
                        head.size
                    ),
                });
            }
            tracing::info!(stream = %key.stream_id(), seq = m.body.seq, log = log.len(), "resuming signed chain");
            // The playlists are not synced when written (derived from the manifest): a crash
            // may have left older ones.
            store.write_playlists(m)?;
        }
        let announce_seq = store.read_announce()?.map(|a| a.body.seq);
        let renditions = latest.as_ref().map(|m| m.body.renditions.clone()).unwrap_or_default();
        let meters = renditions
            .iter()
            .map(|r| {
                let mut m = BandwidthMeter::default();
                for s in &r.segments {
                    m.push(sample(s.dur_us, s.size), r.target_duration);
                }
                (r.name.clone(), m)
            })
            .collect();
        let mut logged_us: HashMap<String, u64> = HashMap::new();
        for e in &entries {
            *logged_us.entry(e.rendition.clone()).or_default() += e.segment.dur_us;
        }
        let mut next_seq = next_seqs(&entries);
        let mut fresh_window = HashSet::new();
        if cfg.parts {
            for r in &renditions {
                *next_seq.entry(r.name.clone()).or_insert(0) += 1;
                fresh_window.insert(r.name.clone());
            }
        }
        let mut signer = StreamSigner {
            logged_us,
            parts: PartSigner::default(),
            fresh_window,
            key,
            store,
            cfg,
            pending_disc: renditions.iter().map(|r| r.name.clone()).collect(),
            next_seq,
            latest,
            renditions,
            log,
            retained: VecDeque::new(),
            refs: HashMap::new(),
            meters,
            announce_seq,
        };
        let keep = signer.cfg.retain_segments.unwrap_or(usize::MAX);
        for e in entries.into_iter().rev().take(keep).rev() {
            signer.retain(e);
        }
        Ok(signer)
    }

    /// The stream's media time so far, milliseconds: the longest rendition's summed segment
    /// durations over the whole log. A restarted ingest starts its timeline here, so that no
    /// new segment repeats the timestamps (and, for a still picture or silence, the bytes) of
    /// one signed before.
    pub fn media_time_ms(&self) -> u64 {
        self.logged_us.values().max().copied().unwrap_or(0).div_ceil(1000)
    }

    /// Signs a PART statement for a part of the segment in progress of its rendition, under
    /// the media sequence number that segment will get (PROTOCOL §16). The segment, when
    /// published, must be exactly the parts signed for it.
    pub fn sign_part(&mut self, p: NewPart) -> Result<SignedPart> {
        let window_next = self
            .renditions
            .iter()
            .find(|r| r.name == p.rendition)
            .filter(|r| !r.ended && !self.fresh_window.contains(&r.name))
            .and_then(|r| r.segments.last())
            .map_or(0, |s| s.seq + 1);
        let seq = window_next.max(self.next_seq.get(&p.rendition).copied().unwrap_or(0));
        self.parts.sign(&self.key, seq, p, crate::now_ms())
    }

    /// After a segment could not be signed: where parts were signed under the number it would
    /// have had, that number is spent (another segment under it would contradict them), and
    /// the rendition goes on one further, in a fresh window.
    fn burn_signed_parts(&mut self, renditions: &[String]) {
        for name in renditions {
            let Some(latest) = self.parts.latest(name) else {
                continue;
            };
            let seq = latest.body.seq;
            let next = self.next_seq.entry(name.clone()).or_insert(0);
            if seq >= *next {
                *next = seq + 1;
                self.fresh_window.insert(name.clone());
                tracing::warn!(rendition = %name, seq, "segment not signed after its parts were: its number is skipped");
            }
        }
    }

    /// The last PART signed for `rendition` since this signer was opened.
    pub fn latest_part(&self, rendition: &str) -> Option<&SignedPart> {
        self.parts.latest(rendition)
    }

    pub fn stream_id(&self) -> StreamId {
        self.key.stream_id()
    }

    pub fn store(&self) -> &StreamStore {
        &self.store
    }

    pub fn latest(&self) -> Option<&Signed<ManifestRoot>> {
        self.latest.as_ref()
    }

    pub fn log(&self) -> &MerkleLog {
        &self.log
    }

    /// Store, log and sign a batch of finished segments as one new MANIFEST_ROOT.
    pub fn publish(&mut self, batch: Vec<NewSegment>) -> Result<Signed<ManifestRoot>> {
        // Check everything before changing anything: a bad segment must not leave half a batch applied.
        let mut new_renditions = HashSet::new();
        for seg in &batch {
            check_segment(seg)?;
            if !self.renditions.iter().any(|r| r.name == seg.rendition) {
                new_renditions.insert(seg.rendition.as_str());
            }
        }
        let total = self.renditions.len() + new_renditions.len();
        if total > limits::MAX_RENDITIONS {
            return Err(Error::oversize("renditions", total, limits::MAX_RENDITIONS));
        }
        // Until the log is appended nothing is committed: a failure (a full disk) puts the
        // windows and numbering back, so the next publish neither lists a segment the log lacks
        // nor skips a media sequence number.
        let undo = (
            self.renditions.clone(),
            self.next_seq.clone(),
            self.pending_disc.clone(),
            self.meters.clone(),
            self.fresh_window.clone(),
        );
        let mut entries = Vec::with_capacity(batch.len());
        let names: Vec<String> = batch.iter().map(|s| s.rendition.clone()).collect();
        let added = batch.into_iter().try_for_each(|seg| {
            entries.push(self.add_segment(seg)?);
            Ok(())
        });
        if let Err(e) = added.and_then(|()| self.store.append_log(&entries)) {
            (
                self.renditions,
                self.next_seq,
                self.pending_disc,
                self.meters,
                self.fresh_window,
            ) = undo;
            self.burn_signed_parts(&names);
            return Err(e);
        }
        for e in entries {
            self.log.push(e.leaf_hash()?);
            *self.logged_us.entry(e.rendition.clone()).or_default() += e.segment.dur_us;
            self.retain(e);
        }
        self.sign_and_store()
    }

    /// Mark every rendition ended (EXT-X-ENDLIST) and sign. A later segment reopens the stream
    /// with a discontinuity and a fresh window that lists none of the ended playlist's segments.
    pub fn end(&mut self) -> Result<Option<Signed<ManifestRoot>>> {
        if self.renditions.is_empty() || self.renditions.iter().all(|r| r.ended) {
            return Ok(None);
        }
        for r in &mut self.renditions {
            r.ended = true;
        }
        self.sign_and_store().map(Some)
    }

    /// Sign a STREAM_ANNOUNCE describing the stream's current renditions.
    pub fn announce(
        &mut self,
        title: &str,
        hints: Hints,
        tip: Option<String>,
        ttl_ms: u64,
    ) -> Result<Signed<StreamAnnounce>> {
        let time_ms = now_ms();
        let seq = self.announce_seq.map_or(0, |s| s + 1);
        let renditions = self
            .renditions
            .iter()
            .map(|r| AnnounceRendition {
                name: r.name.clone(),
                codecs: r.codecs.clone().unwrap_or_default(),
                bandwidth: r.bandwidth,
                resolution: r.resolution.clone(),
                frame_rate_milli: r.frame_rate_milli,
            })
            .collect();
        let body = StreamAnnounce {
            stream: self.stream_id(),
            seq,
            time_ms,
            expires_ms: time_ms.saturating_add(ttl_ms),
            title: title.to_string(),
            renditions,
            hints,
            tip,
        };
        let signed = Signed::sign(body, &self.key)?;
        self.store.write_announce(&signed)?;
        self.announce_seq = Some(seq);
        Ok(signed)
    }

    fn add_segment(&mut self, seg: NewSegment) -> Result<LogEntry> {
        let init = match (&seg.init, seg.container) {
            (Some(bytes), Container::Fmp4) => {
                let blob = BlobRef {
                    hash: Hash::of(bytes),
                    size: bytes.len() as u64,
                };
                self.store.put_blob(&init_path(&blob.hash), bytes)?;
                Some(blob)
            }
            _ => None,
        };
        let hash = Hash::of(&seg.data);
        self.store.put_blob(&segment_path(&hash, seg.container), &seg.data)?;

        let idx = match self.renditions.iter().position(|r| r.name == seg.rendition) {
            Some(i) => i,
            None => {
                let target = seg.info.target_duration.unwrap_or(self.cfg.target_duration);
                self.renditions.push(Rendition::new(
                    seg.rendition.clone(),
                    seg.container,
                    target.clamp(1, 60),
                ));
                self.renditions.len() - 1
            }
        };
        let window = self.cfg.window.clamp(1, limits::MAX_WINDOW_SEGMENTS);
        let resumed = self.pending_disc.remove(&seg.rendition);
        let r = &mut self.renditions[idx];
        // A spent number (parts signed under it, segment never signed) starts a fresh window
        // as an end does: the window's numbers must stay consecutive.
        let fresh = self.fresh_window.remove(&seg.rendition);
        let mut disc = seg.discontinuity || r.ended || resumed || fresh;
        if r.ended || fresh {
            // A playlist must not go on after EXT-X-ENDLIST (RFC 8216 §6.2.1): a stream that
            // comes back after a real end starts a fresh window, none of the ended playlist's
            // segments in it, numbered on after them, one discontinuity later.
            let dropped_discs = r.segments.iter().filter(|s| s.disc).count() as u64;
            r.disc_seq += dropped_discs;
            r.segments.clear();
            self.meters.remove(&seg.rendition);
        }
        if r.container != seg.container {
            // A container switch is a new stream shape for players: restart the rendition's window.
            r.container = seg.container;
            disc = true;
            self.meters.remove(&seg.rendition);
        }
        r.ended = false;
        let needed = (seg.duration_us.saturating_add(500_000) / 1_000_000).max(1);
        if needed > r.target_duration && !r.segments.is_empty() {
            // RFC 8216bis forbids a change of EXT-X-TARGETDURATION; players cope, but say so.
            tracing::warn!(
                rendition = %seg.rendition,
                from = r.target_duration,
                to = needed,
                "a {} ms segment raises EXT-X-TARGETDURATION mid-stream",
                seg.duration_us / 1000
            );
        }
        r.target_duration = r.target_duration.max(needed);
        let info = seg.info;
        if info.codecs.is_some() {
            r.codecs = info.codecs;
        }
        if info.resolution.is_some() {
            r.resolution = info.resolution;
        }
        if info.frame_rate_milli.is_some() {
            r.frame_rate_milli = info.frame_rate_milli;
        }
        if info.kind.is_some() {
            r.kind = info.kind;
        }
        if let Some(ch) = info.channels {
            r.channels = Some(u64::from(ch));
        }
        // The newest segment's: a node restarted without parts stops declaring them.
        r.part_target_us = info.part_target_us;
        let meter = self.meters.entry(seg.rendition.clone()).or_default();
        meter.push(sample(seg.duration_us, seg.data.len() as u64), r.target_duration);
        r.bandwidth = info.bandwidth.or(meter.peak());
        r.average_bandwidth = meter.average();
        let window_next = r.segments.last().map_or(0, |s| s.seq + 1);
        let next = self.next_seq.entry(seg.rendition.clone()).or_insert(0);
        let seq = window_next.max(*next);
        self.parts.check_segment(&seg.rendition, seq, &hash)?;
        *next = seq + 1;
        let r = &mut self.renditions[idx];
        // The very first segment of a rendition has nothing to be discontinuous with.
        disc &= seq > 0;
        r.init = init;
        let entry = SegmentRef {
            seq,
            dur_us: seg.duration_us,
            hash,
            size: seg.data.len() as u64,
            disc,
            pdt_ms: seg.pdt_ms,
            init: init.map(|b| b.hash),
            independent: (!seg.independent).then_some(false),
        };
        r.segments.push(entry.clone());
        // After a container switch only segments of the new container stay in the window.
        let is_ts = r.container == Container::Ts;
        let dropped_discs = r
            .segments
            .iter()
            .filter(|s| s.init.is_none() != is_ts && s.disc)
            .count() as u64;
        r.segments.retain(|s| s.init.is_none() == is_ts);
        r.disc_seq += dropped_discs;
        while r.segments.len() > window {
            let dropped = r.segments.remove(0);
            if dropped.disc {
                r.disc_seq += 1;
            }
        }
        Ok(LogEntry {
            rendition: seg.rendition,
            segment: entry,
        })
    }

    fn sign_and_store(&mut self) -> Result<Signed<ManifestRoot>> {
        let (seq, prev, last_time) = match &self.latest {
            Some(m) => (m.body.seq + 1, Some(m.id), m.body.time_ms),
            None => (0, None, 0),
        };
        let body = ManifestRoot {
            stream: self.stream_id(),
            seq,
            time_ms: now_ms().max(last_time),
            prev,
            renditions: self.renditions.clone(),
            log: LogHead {
                size: self.log.len(),
                root: self.log.root(),
            },
        };
        let signed = Signed::sign(body, &self.key)?;
        self.store.write_manifest(&signed)?;
        self.latest = Some(signed.clone());
        self.prune();
        Ok(signed)
    }

    fn retain(&mut self, e: LogEntry) {
        *self.refs.entry(e.segment.hash).or_default() += 1;
        if let Some(init) = e.segment.init {
            *self.refs.entry(init).or_default() += 1;
        }
        self.retained.push_back(e);
    }

    /// Delete the blobs of entries older than the retention, unless still referenced.
    fn prune(&mut self) {
        let Some(keep) = self.cfg.retain_segments else {
            return;
        };
        let keep = keep.max(self.cfg.window * self.renditions.len().max(1));
        if self.retained.len() <= keep {
            return;
        }
        // Oldest first, but never a segment some rendition's live window still lists: a stalled
        // rendition (say a ladder rung whose encoder died) keeps its window playable while the
        // others move on.
        let in_window: HashSet<Hash> = self
            .renditions
            .iter()
            .flat_map(|r| r.segments.iter().map(|s| s.hash).chain(r.init.map(|i| i.hash)))
            .collect();
        let mut excess = self.retained.len() - keep;
        let mut kept = VecDeque::with_capacity(self.retained.len());
        while let Some(e) = self.retained.pop_front() {
            if excess == 0 || in_window.contains(&e.segment.hash) {
                kept.push_back(e);
                continue;
            }
            excess -= 1;
            let container = if e.segment.init.is_some() {
                Container::Fmp4
            } else {
                Container::Ts
            };
            if self.release(e.segment.hash) {
                self.store.remove_blob(&segment_path(&e.segment.hash, container));
            }
            if let Some(init) = e.segment.init
                && self.release(init)
            {
                self.store.remove_blob(&init_path(&init));
            }
        }
        self.retained = kept;
    }

    /// Drop one reference; true when none remain.
    fn release(&mut self, hash: Hash) -> bool {
        match self.refs.get_mut(&hash) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.refs.remove(&hash);
                true
            }
        }
    }
}
