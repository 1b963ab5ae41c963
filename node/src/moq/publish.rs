//! Catalog -> MoQ: every stream the catalog holds becomes a broadcast on a local origin, which
//! the MoQ server serves to subscribers and the relay link pushes upstream.
//!
//! One task owns every producer (broadcast, tracks). It follows `Catalog::subscribe()`: for each
//! new view it writes a new announce and/or manifest group, and one group per segment the
//! manifest added, carrying exactly the bytes the HTTP origin serves (read from the catalog's
//! memory cache, else from disk and checked against their BLAKE3 name first).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use manifest_signer::objects::{INIT_EXT, limits};
use manifest_signer::store::SEGMENT_DIR;
use manifest_signer::{Hash, Rendition, SegmentRef, StreamId};
use moq_net::{Timestamp, broadcast, track};
use tokio::sync::broadcast::error::RecvError;

use super::mapping::{self, ANNOUNCE_TRACK, CATALOG_TRACK, MANIFEST_TRACK};
use crate::catalog::{Catalog, StreamView};
use crate::metrics::FailureSource;

/// Segments of a window published when a stream is first seen (older ones are not live).
const BACKFILL_SEGMENTS: usize = 3;

struct Published {
    /// Kept so the broadcast lives as long as this entry.
    _broadcast: broadcast::Producer,
    announce: track::Producer,
    manifest: track::Producer,
    catalog: track::Producer,
    catalog_json: Vec<u8>,
    renditions: HashMap<String, RenditionTrack>,
    last_manifest: Option<Hash>,
    last_announce: Option<Hash>,
}

struct RenditionTrack {
    track: track::Producer,
    /// The next media sequence number to publish.
    next_seq: Option<u64>,
}

pub struct Publisher {
    catalog: Arc<Catalog>,
    origin: moq_net::origin::Producer,
    streams: HashMap<StreamId, Published>,
}

impl Publisher {
    pub fn new(catalog: Arc<Catalog>, origin: moq_net::origin::Producer) -> Self {
        Publisher {
            catalog,
            origin,
            streams: HashMap::new(),
        }
    }

    /// Publish what the catalog holds now, then every view it accepts, until `stop`.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut updates = self.catalog.subscribe();
        for view in self.catalog.list() {
            self.publish(&view).await;
        }
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => {
                    self.finish();
                    return Ok(());
                }
                update = updates.recv() => match update {
                    Ok(view) => self.publish(&view).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "moq publisher fell behind the catalog; re-reading it");
                        for view in self.catalog.list() {
                            self.publish(&view).await;
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    /// End every track and broadcast cleanly (subscribers see the end, not an error).
    fn finish(&mut self) {
        for (_, p) in self.streams.drain() {
            for t in [&p.announce, &p.manifest, &p.catalog]
                .into_iter()
                .chain(p.renditions.values().map(|r| &r.track))
            {
                let _ = t.finish();
            }
            p._broadcast.close();
        }
    }

    async fn publish(&mut self, view: &StreamView) {
        if let Err(e) = self.publish_inner(view).await {
            tracing::warn!(stream = %view.id, error = %e, "moq publish failed");
        }
    }

    async fn publish_inner(&mut self, view: &StreamView) -> anyhow::Result<()> {
        if !self.streams.contains_key(&view.id) {
            let p = self.create(view)?;
            self.streams.insert(view.id, p);
        }
        let Some(p) = self.streams.get_mut(&view.id) else {
            return Ok(());
        };
        let m = &view.manifest;
        if p.last_manifest != Some(m.id) {
            // Tracks for new renditions, and a catalog group when the set changed.
            for r in &m.body.renditions {
                if !p.renditions.contains_key(&r.name) && p.renditions.len() < limits::MAX_RENDITIONS {
                    let info = track::Info::default().with_max_age(mapping::media_max_age(r.target_duration));
                    let track = p._broadcast.create_track(mapping::rendition_track(&r.name), info)?;
                    p.renditions
                        .insert(r.name.clone(), RenditionTrack { track, next_seq: None });
                }
            }
            let json = serde_json::to_vec(&mapping::Catalog::of(&m.body))?;
            if json != p.catalog_json {
                p.catalog.write_frame(Timestamp::now(), Bytes::from(json.clone()))?;
                p.catalog_json = json;
            }
            // The manifest first, so a subscriber can verify the segments that follow on arrival.
            let mut g = p.manifest.create_group(m.body.seq.into())?;
            g.write_frame(ts_ms(m.body.time_ms), view.manifest_wire.clone())?;
            g.finish()?;
            p.last_manifest = Some(m.id);
            self.catalog.metrics().moq_published(view.manifest_wire.len() as u64, 0);
            for r in &m.body.renditions {
                publish_segments(&self.catalog, view, r, p).await;
            }
        }
        if let (Some(a), Some(wire)) = (&view.announce, &view.announce_wire)
            && p.last_announce != Some(a.id)
        {
            let mut g = p.announce.create_group(a.body.seq.into())?;
            g.write_frame(ts_ms(a.body.time_ms), wire.clone())?;
            g.finish()?;
            p.last_announce = Some(a.id);
        }
        Ok(())
    }

    fn create(&self, view: &StreamView) -> anyhow::Result<Published> {
        let b = self.origin.create_broadcast(mapping::broadcast_path(&view.id))?;
        let announce = b.create_track(ANNOUNCE_TRACK, None)?;
        let manifest = b.create_track(MANIFEST_TRACK, None)?;
        let catalog = b.create_track(CATALOG_TRACK, None)?;
        b.announce(Default::default())?;
        tracing::info!(stream = %view.id, "moq broadcast published");
        Ok(Published {
            _broadcast: b,
            announce,
            manifest,
            catalog,
            catalog_json: Vec::new(),
            renditions: HashMap::new(),
            last_manifest: None,
            last_announce: None,
        })
    }
}

fn ts_ms(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap_or_else(|_| Timestamp::now())
}

/// One group per segment the manifest added to this rendition: `[init, media]` for fMP4,
/// `[media]` for MPEG-TS; group sequence = media sequence number.
async fn publish_segments(catalog: &Catalog, view: &StreamView, r: &Rendition, p: &mut Published) {
    let Some(rt) = p.renditions.get_mut(&r.name) else {
        return;
    };
    let skip = match rt.next_seq {
        Some(next) => r.segments.iter().take_while(|s| s.seq < next).count(),
        None => r.segments.len().saturating_sub(BACKFILL_SEGMENTS),
    };
    for s in &r.segments[skip..] {
        rt.next_seq = Some(s.seq + 1);
        match segment_frames(catalog, view, r, s).await {
            Ok(frames) => {
                let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
                if let Err(e) = write_group(&rt.track, s, frames) {
                    tracing::warn!(stream = %view.id, rendition = %r.name, seq = s.seq, error = %e, "moq group not written");
                    continue;
                }
                catalog.metrics().moq_published(bytes, 1);
            }
            Err(e) => {
                tracing::warn!(stream = %view.id, rendition = %r.name, seq = s.seq, error = %e, "segment not published over moq");
            }
        }
    }
}

fn write_group(track: &track::Producer, s: &SegmentRef, frames: Vec<Bytes>) -> Result<(), moq_net::Error> {
    let mut g = track.create_group(s.seq.into())?;
    let t = ts_ms(s.pdt_ms.unwrap_or(0));
    for f in frames {
        g.write_frame(t, f)?;
    }
    g.finish()
}

async fn segment_frames(
    catalog: &Catalog,
    view: &StreamView,
    r: &Rendition,
    s: &SegmentRef,
) -> anyhow::Result<Vec<Bytes>> {
    let mut frames = Vec::with_capacity(2);
    if let Some(init) = s.init {
        frames.push(load(catalog, view, init, INIT_EXT, limits::MAX_INIT_BYTES).await?);
    }
    let media = load(
        catalog,
        view,
        s.hash,
        r.container.media_ext(),
        limits::MAX_SEGMENT_BYTES,
    )
    .await?;
    anyhow::ensure!(
        media.len() as u64 == s.size,
        "segment {} is {} bytes, the manifest says {}",
        s.hash,
        media.len(),
        s.size
    );
    frames.push(media);
    Ok(frames)
}

/// The bytes of a blob as the HTTP origin serves them: from the memory cache (checked when it
/// was put there), else from disk, checked against the name before they leave.
async fn load(catalog: &Catalog, view: &StreamView, hash: Hash, ext: &'static str, max: u64) -> anyhow::Result<Bytes> {
    if let Some((cached_ext, bytes)) = catalog.cache().get(&hash)
        && cached_ext == ext
    {
        return Ok(bytes);
    }
    let path = view.dir.join(SEGMENT_DIR).join(format!("{hash}.{ext}"));
    let len = tokio::fs::metadata(&path).await?.len();
    anyhow::ensure!(len <= max, "{} is {len} bytes, more than {max}", path.display());
    let data = Bytes::from(tokio::fs::read(&path).await?);
    let check = data.clone();
    let ok = tokio::task::spawn_blocking(move || Hash::of(&check) == hash).await?;
    if !ok {
        catalog.metrics().verification_failure(FailureSource::Disk);
        tracing::error!(stream = %view.id, %hash, "segment on disk does not match its hash: not published");
        anyhow::bail!("segment {hash} on disk does not match its hash");
    }
    catalog.cache().put(hash, ext, data.clone());
    Ok(data)
}
