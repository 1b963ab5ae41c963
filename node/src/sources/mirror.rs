//! The HTTP-only mirror (`hlswarm seed --no-swarm`): a thin driver around [`HttpSources`].
//! Every poll asks every usable source for its manifest, at once; the freshest that verifies is
//! offered to the replica (an older one is a replay the chain refuses, so a stale mirror can
//! never pull this node back); the blobs it lists come from the freshest sources first, the
//! next source when one does not have a blob, and a source whose bytes fail verification is
//! banned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use manifest_signer::{ManifestRoot, Signed, StreamAnnounce, StreamId};

use super::fetch::{self, Failed, Polled};
use super::{HttpSources, report};
use crate::metrics::{FailureSource, Metrics};
use crate::replica::{LogProgress, Offered, Replica, Wanted};

/// How often the mirror polls its sources.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Archive blobs fetched per poll (live segments go first).
const ARCHIVE_PER_POLL: usize = 8;

/// One followed stream's mirror.
#[derive(Debug)]
pub struct Mirror {
    replica: Arc<Replica>,
    stream: StreamId,
    sources: HttpSources,
    client: reqwest::Client,
}

impl Mirror {
    pub fn new(replica: Arc<Replica>, stream: StreamId, bases: Vec<String>, ban: Duration) -> reqwest::Result<Self> {
        Ok(Mirror {
            replica,
            stream,
            sources: HttpSources::new(bases, ban),
            client: fetch::client()?,
        })
    }

    fn metrics(&self) -> &Metrics {
        self.replica.catalog().metrics()
    }

    /// Poll forever (the caller stops it).
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.poll_once().await;
        }
    }

    /// One round: manifests from every source, the freshest offered, its blobs, the log, a
    /// few archive blobs.
    pub async fn poll_once(&mut self) {
        let now = Instant::now();
        let bases = self.sources.pick_for_poll(now);
        if bases.is_empty() {
            return;
        }
        let polled = fetch::poll_all(&self.client, bases, self.stream).await;
        let mut verified: Vec<(Signed<ManifestRoot>, Polled)> = Vec::new();
        for p in polled {
            if let Some(m) = self.check_manifest(&p) {
                verified.push((m, p));
            }
        }
        // The freshest first; whatever is older is then a replay, and not taken. Reported in
        // that order, a stale source is found behind in the first round that also hears a
        // fresher one.
        verified.sort_by_key(|(m, _)| std::cmp::Reverse(m.body.seq));
        for (m, p) in &verified {
            report::manifest(
                &mut self.sources,
                self.replica.catalog().metrics(),
                &self.stream,
                &p.base,
                m.body.seq,
            );
        }
        let mut newest = None;
        for (m, p) in &verified {
            if let Some(a) = &p.announce {
                self.offer_announce(&p.base, a);
            }
            if newest.is_some() {
                continue;
            }
            match self
                .replica
                .offer_manifest_from(&self.stream, m.wire(), FailureSource::Http)
            {
                Ok(Offered::New { seq, .. } | Offered::Known { seq }) => newest = Some(seq),
                Err(e) if e.code() == "replay" => {}
                Err(e) => {
                    tracing::warn!(stream = %self.stream, base = %p.base, code = e.code(), error = %e, "manifest from HTTP source refused");
                }
            }
        }
        let live = self.replica.wanted(&self.stream);
        let seq = self.replica.superseded(&self.stream).map(|(_, n)| n).or(newest);
        for w in live {
            self.fetch_blob(w, seq).await;
        }
        self.sync_log().await;
        for (_, w) in self.replica.archive_wanted(&self.stream, ARCHIVE_PER_POLL) {
            self.fetch_blob(w, None).await;
        }
    }

    /// A source's polled manifest, verified; its failures reported and counted.
    fn check_manifest(&mut self, p: &Polled) -> Option<Signed<ManifestRoot>> {
        let wire = match &p.manifest {
            Ok(w) => w,
            Err(Failed::Missing) => {
                self.sources.report_ok(&p.base);
                return None;
            }
            Err(Failed::Unreachable(why)) => {
                self.unreachable(&p.base, "manifest", why);
                return None;
            }
        };
        match Signed::<ManifestRoot>::verify(wire, &self.stream) {
            Ok(m) => {
                self.sources.report_ok(&p.base);
                Some(m)
            }
            Err(e) => {
                self.metrics().verification_failure(FailureSource::Http);
                self.tampered(&p.base, "its manifest does not verify", &e);
                None
            }
        }
    }

    fn offer_announce(&mut self, base: &str, wire: &Bytes) {
        if let Err(e) = self.replica.offer_announce_wire(&self.stream, wire)
            && report::is_forgery(e.code())
            && Signed::<StreamAnnounce>::verify(wire, &self.stream).is_err()
        {
            self.metrics().verification_failure(FailureSource::Http);
            self.tampered(base, "its announce does not verify", &e);
        }
    }

    fn unreachable(&mut self, base: &str, what: &str, why: &str) {
        report::unreachable(
            &mut self.sources,
            self.replica.catalog().metrics(),
            &self.stream,
            base,
            what,
            why,
        );
    }

    fn tampered(&mut self, base: &str, reason: &'static str, e: &manifest_signer::Error) {
        report::tampered(
            &mut self.sources,
            self.replica.catalog().metrics(),
            &self.stream,
            base,
            reason,
            e,
        );
    }

    /// A wanted blob from the best source that has it; each source tried at most once.
    async fn fetch_blob(&mut self, w: Wanted, seq: Option<u64>) {
        let mut tried: Vec<String> = Vec::new();
        while tried.len() < super::MAX_SOURCES {
            if !self.replica.is_wanted(&self.stream, &w.hash) {
                return;
            }
            let now = Instant::now();
            let Some(base) = self.sources.pick_for_blob(now, seq, &tried) else {
                return;
            };
            tried.push(base.clone());
            let url = fetch::blob_url(&base, &self.stream, &w.hash, w.ext);
            let limit = w.size.min(manifest_signer::objects::limits::MAX_SEGMENT_BYTES);
            let bytes = match fetch::get(&self.client, &url, limit, fetch::BLOB_TIMEOUT).await {
                Ok(b) => b,
                Err(Failed::Missing) => {
                    self.sources.report_ok(&base);
                    continue;
                }
                Err(Failed::Unreachable(why)) => {
                    self.unreachable(&base, "segment", &why);
                    continue;
                }
            };
            let (r2, stream, hash) = (self.replica.clone(), self.stream, w.hash);
            let res =
                tokio::task::spawn_blocking(move || r2.put_blob_from(&stream, hash, bytes, FailureSource::Http)).await;
            match res {
                Ok(Ok(())) => {
                    self.sources.report_ok(&base);
                    return;
                }
                Ok(Err(e)) if e.code() == "hash_mismatch" => {
                    self.tampered(&base, "sent a segment that does not match its hash", &e);
                }
                Ok(Err(e)) => {
                    tracing::warn!(%url, code = e.code(), error = %e, "segment from HTTP source not stored");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// The log entries the replica lacks, from the freshest source; checked against the
    /// signed root by the replica.
    async fn sync_log(&mut self) {
        let Some(need) = self.replica.log_need(&self.stream) else {
            return;
        };
        let Some(base) = self.sources.pick_for_blob(Instant::now(), Some(need.seq), &[]) else {
            return;
        };
        let url = fetch::log_url(&base, &self.stream);
        let all = match fetch::get(&self.client, &url, crate::swarm::MAX_HTTP_LOG_BYTES, fetch::LOG_TIMEOUT).await {
            Ok(b) => b,
            Err(Failed::Missing) => return,
            Err(Failed::Unreachable(why)) => return self.unreachable(&base, "log", &why),
        };
        let (r2, stream) = (self.replica.clone(), self.stream);
        let res = tokio::task::spawn_blocking(move || {
            r2.offer_log_from(
                &stream,
                need.from,
                crate::swarm::skip_lines(&all, need.from),
                FailureSource::Http,
            )
        })
        .await;
        match res {
            Ok(Ok(LogProgress::Verified(_) | LogProgress::Stale)) | Err(_) => {}
            // This source's log is shorter than the signed root: start over with the next one.
            Ok(Ok(LogProgress::Staged(_))) => self.replica.reset_log_staging(&self.stream),
            Ok(Err(e)) => {
                // The whole log came from one source: if it does not reach the signed root, it lied.
                self.replica.reset_log_staging(&self.stream);
                self.tampered(&base, "sent a log that does not match the signed root", &e);
            }
        }
    }
}
