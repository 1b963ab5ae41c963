//! The signer loop's state machine: what the ingest hands over (parts, segments, publish
//! events) is signed, kept and offered to the catalog, in order; the end of a stream is signed
//! by the policy in `crate::ending`. `run.rs` drives it from its select loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use manifest_signer::RenditionKind;
use manifest_signer::signer::{NewSegment, RenditionInfo, StreamSigner};
use manifest_signer::{Container, Hints, ManifestRoot, Signed, now_ms};

use super::ANNOUNCE_TTL_MS;
use crate::catalog::Catalog;
use crate::ending::{Action, EndCause, EndPolicy};

/// The signer loop's state: signs what the ingest hands over and publishes it to the catalog.
pub(super) struct Signing<'a> {
    pub(super) signer: &'a mut StreamSigner,
    pub(super) catalog: &'a Catalog,
    pub(super) title: String,
    pub(super) tip: Option<String>,
    pub(super) hints: Hints,
    pub(super) announced: Option<String>,
    pub(super) announced_at: u64,
    /// (session, Unix ms at stream time 0): program date-times come from the stream's own
    /// timeline, so ladder rungs (which arrive later than the source) get the source's times.
    pub(super) clock: Option<(u64, u64)>,
    /// Renditions whose last segment was dropped: their next one starts a discontinuity.
    pub(super) gaps: HashSet<String>,
    /// When to sign the end of the stream (node/src/ending.rs).
    pub(super) ending: EndPolicy,
    pub(super) grace: Duration,
    /// A source video segment held until the audio segment of the same cut arrives (it comes
    /// right after), so that both are signed in one MANIFEST_ROOT: a player never sees a
    /// manifest whose video is a segment ahead of its audio. Flushed alone at the deadline.
    pub(super) pending: Option<(ingest::Segment, std::time::Instant)>,
    /// The session whose source segments come with an audio rendition.
    pub(super) with_audio: Option<u64>,
    /// `PART-TARGET` signed into every fMP4 rendition when parts are on: the ingest closes a
    /// part by 1.1 times its target at the latest.
    pub(super) part_target_us: Option<u64>,
    /// The init segment of each rendition's latest part: part 0 of a segment with another one
    /// is signed fresh (without `prev`).
    pub(super) part_inits: HashMap<String, manifest_signer::Hash>,
}

impl Signing<'_> {
    pub(super) fn handle(&mut self, event: ingest::IngestEvent) {
        match event {
            ingest::IngestEvent::Segment(seg) if seg.audio_group => {
                self.with_audio = Some(seg.session);
                match self.pending.take() {
                    Some((video, _)) if video.session == seg.session && video.sequence == seg.sequence => {
                        self.sign_segments(vec![video, seg]);
                    }
                    other => {
                        if let Some((video, _)) = other {
                            self.sign_segments(vec![video]);
                        }
                        self.sign_segments(vec![seg]);
                    }
                }
                return;
            }
            ingest::IngestEvent::Segment(seg) if seg.rendition != "source" => {
                self.sign_segments(vec![seg]); // a ladder rung: on its own clock
                return;
            }
            ingest::IngestEvent::Segment(seg) if self.with_audio == Some(seg.session) => {
                self.flush_pending();
                self.pending = Some((seg, std::time::Instant::now() + AUDIO_WAIT));
                return;
            }
            _ => self.flush_pending(),
        }
        match event {
            ingest::IngestEvent::Publishing { session, .. } => {
                tracing::info!(session, "publisher connected");
                self.ending.on_publishing(session);
            }
            ingest::IngestEvent::Unpublished { session, reason, .. } => {
                match self.ending.on_unpublished(session, reason, std::time::Instant::now()) {
                    Action::End(cause) => self.sign_end(cause),
                    Action::Wait if reason == ingest::EndReason::Disconnected => tracing::info!(
                        session,
                        grace_s = self.grace.as_secs(),
                        "publisher dropped without ending the stream: it stays live for the grace period"
                    ),
                    Action::Wait => tracing::info!(session, ?reason, "publisher gone; the stream stays live"),
                }
            }
            ingest::IngestEvent::Part(part) => self.sign_part(part),
            ingest::IngestEvent::Segment(seg) => self.sign_segments(vec![seg]),
        }
    }

    /// Signs the held source video segment on its own (its audio did not come in time).
    pub(super) fn flush_pending(&mut self) {
        if let Some((video, _)) = self.pending.take() {
            self.sign_segments(vec![video]);
        }
    }

    /// Signs segments of one cut in one MANIFEST_ROOT.
    fn sign_segments(&mut self, segs: Vec<ingest::Segment>) {
        let mut cached = Vec::with_capacity(segs.len());
        let mut batch = Vec::with_capacity(segs.len());
        for mut seg in segs {
            if seg.rendition == "source" {
                self.catalog.set_publisher_advice(&seg.advice);
            }
            // After a dropped segment the timeline jumps: players must be told.
            seg.discontinuity |= self.gaps.remove(&seg.rendition);
            cached.push((seg.rendition.clone(), seg.data.clone(), seg.init.clone()));
            let anchor = match self.clock {
                Some((session, anchor)) if session == seg.session => anchor,
                _ => {
                    let end_ms = (seg.start_pts_us + seg.duration_us) / 1000;
                    let anchor = now_ms().saturating_sub(end_ms);
                    self.clock = Some((seg.session, anchor));
                    anchor
                }
            };
            batch.push(to_new_segment(seg, anchor, self.part_target_us));
        }
        let logged = self.signer.log().len();
        let count = batch.len() as u64;
        match tokio::task::block_in_place(|| self.signer.publish(batch)) {
            Ok(m) => {
                tracing::info!(seq = m.body.seq, log = m.body.log.size, "signed MANIFEST_ROOT");
                self.catalog.metrics().signed(count);
                for (rendition, data, init) in cached {
                    self.cache(&m.body, &rendition, data, init);
                }
                self.offer(m);
                self.announce_if_needed(false);
            }
            Err(e) => {
                self.store_error(&e);
                if self.signer.log().len() > logged {
                    // Logged but its manifest not written: the next manifest signs it.
                    tracing::error!(code = e.code(), error = %e, "cannot sign segment yet; logged, the next manifest covers it");
                } else {
                    // A segment that cannot be stored is dropped, never served unsigned.
                    for (rendition, ..) in cached {
                        self.catalog.metrics().ingest_dropped();
                        self.gaps.insert(rendition);
                    }
                    tracing::error!(code = e.code(), error = %e, "cannot sign segment; dropped");
                }
            }
        }
    }

    /// Signs a part of a segment in progress and keeps it for LL-HLS. A part that cannot be
    /// signed is not served (its segment is still signed whole, or refused, later).
    fn sign_part(&mut self, part: ingest::Part) {
        let data = part.data.clone();
        let init = part.init.as_deref().map(manifest_signer::Hash::of);
        let new_init = init.is_some_and(|i| self.part_inits.get(&part.rendition) != Some(&i));
        let new = manifest_signer::signer::NewPart {
            rendition: part.rendition.clone(),
            index: part.index,
            data: Arc::from(&part.data[..]),
            duration_us: part.duration_us,
            independent: part.independent,
            // A new publish or new codec parameters: consumers must wait for the manifest.
            fresh: part.discontinuity || new_init,
        };
        match self.signer.sign_part(new) {
            Ok(signed) => {
                if let Some(i) = init {
                    self.part_inits.insert(part.rendition.clone(), i);
                }
                let stream = self.signer.stream_id();
                self.catalog.parts().add(stream, signed, data);
                if let Some(t) = part.received {
                    self.catalog.metrics().part_signing.observe(t.elapsed());
                }
            }
            Err(e) => {
                self.catalog.metrics().ingest_dropped();
                tracing::warn!(rendition = %part.rendition, index = part.index, code = e.code(), error = %e, "part not signed; not served");
            }
        }
    }

    /// The end-of-stream timer fired.
    pub(super) fn on_deadline(&mut self) {
        if let Action::End(cause) = self.ending.on_deadline(std::time::Instant::now()) {
            self.sign_end(cause);
        }
    }

    /// Mark every rendition ended (EXT-X-ENDLIST) and sign.
    fn sign_end(&mut self, cause: EndCause) {
        match tokio::task::block_in_place(|| self.signer.end()) {
            Ok(Some(m)) => {
                tracing::info!(seq = m.body.seq, ?cause, "signed the end of the stream (EXT-X-ENDLIST)");
                self.offer(m);
            }
            Ok(None) => {}
            Err(e) => {
                self.store_error(&e);
                tracing::error!(error = %e, "cannot sign the end of the stream");
            }
        }
    }

    /// Keep the segment just signed in memory: every live viewer asks for it next.
    fn cache(&self, m: &ManifestRoot, rendition: &str, data: bytes::Bytes, init: Option<bytes::Bytes>) {
        let Some(r) = m.rendition(rendition) else { return };
        let cache = self.catalog.cache();
        if let Some(s) = r.segments.last() {
            cache.put(s.hash, r.container.media_ext(), data);
        }
        if let (Some(i), Some(bytes)) = (&r.init, init) {
            cache.put(i.hash, manifest_signer::objects::INIT_EXT, bytes);
        }
    }

    fn offer(&self, m: Signed<ManifestRoot>) {
        if let Err(e) = self.catalog.offer_manifest(m) {
            tracing::error!(code = e.code(), error = %e, "own manifest refused by the catalog");
        }
    }

    /// Sign a STREAM_ANNOUNCE when the renditions changed or half its lifetime has passed.
    pub(super) fn announce_if_needed(&mut self, startup: bool) {
        let Some(m) = self.signer.latest() else { return };
        let shape = format!(
            "{:?}",
            m.body
                .renditions
                .iter()
                .map(|r| (&r.name, &r.codecs, &r.resolution))
                .collect::<Vec<_>>()
        );
        let fresh = now_ms().saturating_sub(self.announced_at) <= ANNOUNCE_TTL_MS / 2;
        if !startup && self.announced.as_ref() == Some(&shape) && fresh {
            return;
        }
        let signed = tokio::task::block_in_place(|| {
            self.signer
                .announce(&self.title, self.hints.clone(), self.tip.clone(), ANNOUNCE_TTL_MS)
        });
        match signed {
            Ok(a) => {
                self.announced = Some(shape);
                self.announced_at = now_ms();
                if let Err(e) = self.catalog.offer_announce_wire(&a.body.stream, a.wire()) {
                    tracing::error!(code = e.code(), error = %e, "own announce refused by the catalog");
                }
            }
            Err(e) => {
                self.store_error(&e);
                tracing::error!(code = e.code(), error = %e, "cannot sign STREAM_ANNOUNCE");
            }
        }
    }

    fn store_error(&self, e: &manifest_signer::Error) {
        if matches!(e, manifest_signer::Error::Io { .. }) {
            self.catalog.metrics().store_write_error();
        }
    }
}

/// How long a source video segment waits for the audio segment of its cut (sent right after
/// it by the same connection) to be signed with it.
const AUDIO_WAIT: Duration = Duration::from_millis(200);

/// `anchor`: Unix ms of stream time 0 in this publish session.
/// `part_target_us`: the node's PART-TARGET, signed for fMP4 renditions (made of parts).
fn to_new_segment(seg: ingest::Segment, anchor: u64, part_target_us: Option<u64>) -> NewSegment {
    let fmp4 = seg.container == ingest::Container::Fmp4;
    let info = &seg.info;
    NewSegment {
        rendition: seg.rendition.clone(),
        container: match seg.container {
            ingest::Container::Fmp4 => Container::Fmp4,
            ingest::Container::Ts => Container::Ts,
        },
        data: Arc::from(&seg.data[..]),
        init: seg.init.as_ref().map(|b| Arc::from(&b[..])),
        duration_us: seg.duration_us,
        discontinuity: seg.discontinuity,
        independent: seg.independent,
        pdt_ms: Some(anchor + seg.start_pts_us / 1000),
        info: RenditionInfo {
            codecs: (!info.codecs.is_empty()).then(|| info.codecs.clone()),
            resolution: (info.width > 0 && info.height > 0).then(|| format!("{}x{}", info.width, info.height)),
            frame_rate_milli: (info.frame_rate_milli > 0).then_some(u64::from(info.frame_rate_milli)),
            // Measured by the signer over the signed segments (RFC 8216 §4.3.4.2).
            bandwidth: None,
            target_duration: None,
            // CMAF: a stream's audio is a rendition of its own, the EXT-X-MEDIA audio group
            // every video rendition plays with (protocol 1.4 `kind`).
            kind: seg.audio_group.then_some(RenditionKind::Audio),
            channels: (seg.audio_group && info.audio_channels > 0).then_some(u32::from(info.audio_channels)),
            part_target_us: part_target_us.filter(|_| fmp4),
        },
    }
}
