//! The swarm's HTTP fallback: the stream's HTTP sources (the hints' origins and mirrors), polled
//! when the swarm is quiet and asked for blobs no peer delivered in time. Which source to ask,
//! and what a failure costs it, is decided by [`crate::sources::HttpSources`]; this drives the
//! fetches and feeds the results back to the swarm task.

use std::time::Instant;

use bytes::Bytes;
use manifest_signer::{Hash, ManifestRoot, Signed, StreamId};

use super::{Internal, LogProgress, MAX_HTTP_LOG_BYTES, Node, skip_lines};
use crate::metrics::FailureSource;
use crate::replica::{LogNeed, Wanted};
use crate::sources::fetch::{self, Failed, Polled};
use crate::sources::report;

/// What an HTTP fetch came to, back on the swarm task.
pub(super) enum HttpEvent {
    Latest {
        stream: StreamId,
        polled: Polled,
    },
    Blob {
        stream: StreamId,
        hash: Hash,
        base: String,
        outcome: BlobOutcome,
    },
    Log {
        stream: StreamId,
        base: String,
        outcome: Result<Result<LogProgress, manifest_signer::Error>, Failed>,
    },
}

pub(super) enum BlobOutcome {
    /// Verified and stored: this many bytes.
    Stored(usize),
    Refused(manifest_signer::Error),
    Failed(Failed),
}

impl Node {
    /// Ask one HTTP source for the stream's manifest and announce.
    pub(super) fn poll_http(&self, stream: StreamId, base: String) {
        let client = self.http.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let polled = fetch::poll(&client, base, stream).await;
            let _ = tx.send(Internal::Http(HttpEvent::Latest { stream, polled })).await;
        });
    }

    /// Fetch a blob from `base`, verify and store it off the swarm task.
    pub(super) fn fetch_http_blob(&mut self, stream: StreamId, w: Wanted, base: String) {
        self.http_inflight += 1;
        let client = self.http.clone();
        let tx = self.tx.clone();
        let replica = self.replica.clone();
        tokio::spawn(async move {
            let url = fetch::blob_url(&base, &stream, &w.hash, w.ext);
            let limit = w.size.min(manifest_signer::objects::limits::MAX_SEGMENT_BYTES);
            let outcome = match fetch::get(&client, &url, limit, fetch::BLOB_TIMEOUT).await {
                Ok(b) => {
                    let len = b.len();
                    let hash = w.hash;
                    match tokio::task::spawn_blocking(move || {
                        replica.put_blob_from(&stream, hash, b, FailureSource::Http)
                    })
                    .await
                    {
                        Ok(Ok(())) => BlobOutcome::Stored(len),
                        Ok(Err(e)) => BlobOutcome::Refused(e),
                        Err(e) => BlobOutcome::Failed(Failed::Unreachable(e.to_string())),
                    }
                }
                Err(f) => {
                    tracing::debug!(%url, failed = ?f, "HTTP fallback fetch failed");
                    BlobOutcome::Failed(f)
                }
            };
            let _ = tx
                .send(Internal::Http(HttpEvent::Blob {
                    stream,
                    hash: w.hash,
                    base,
                    outcome,
                }))
                .await;
        });
    }

    /// Fetch the stream's log from the best HTTP source and offer the entries `need` lacks.
    /// False when no source may be asked now.
    pub(super) fn fetch_http_log(&mut self, stream: StreamId, need: LogNeed) -> bool {
        let Some(base) = self
            .streams
            .get(&stream)
            .and_then(|c| c.http.pick_for_blob(Instant::now(), Some(need.seq), &[]))
        else {
            return false;
        };
        let client = self.http.clone();
        let tx = self.tx.clone();
        let replica = self.replica.clone();
        tokio::spawn(async move {
            let url = fetch::log_url(&base, &stream);
            let outcome = match fetch::get(&client, &url, MAX_HTTP_LOG_BYTES, fetch::LOG_TIMEOUT).await {
                Ok(all) => Ok(tokio::task::spawn_blocking(move || {
                    replica.offer_log_from(&stream, need.from, skip_lines(&all, need.from), FailureSource::Http)
                })
                .await
                .unwrap_or(Ok(LogProgress::Stale))),
                Err(f) => Err(f),
            };
            let _ = tx.send(Internal::Http(HttpEvent::Log { stream, base, outcome })).await;
        });
        true
    }

    pub(super) fn on_http(&mut self, ev: HttpEvent) {
        match ev {
            HttpEvent::Latest { stream, polled } => self.on_http_latest(stream, polled),
            HttpEvent::Blob {
                stream,
                hash,
                base,
                outcome,
            } => {
                self.http_inflight = self.http_inflight.saturating_sub(1);
                let catalog = self.catalog.clone();
                let metrics = catalog.metrics();
                if let Some(c) = self.streams.get_mut(&stream) {
                    match &outcome {
                        BlobOutcome::Stored(_) => c.http.report_ok(&base),
                        BlobOutcome::Refused(e) if e.code() == "hash_mismatch" => report::tampered(
                            &mut c.http,
                            metrics,
                            &stream,
                            &base,
                            "sent a segment that does not match its hash",
                            e,
                        ),
                        BlobOutcome::Refused(e) => {
                            tracing::debug!(%stream, %hash, code = e.code(), "blob from HTTP source not stored")
                        }
                        BlobOutcome::Failed(Failed::Missing) => {}
                        BlobOutcome::Failed(Failed::Unreachable(why)) => {
                            report::unreachable(&mut c.http, metrics, &stream, &base, "segment", why)
                        }
                    }
                    if !matches!(outcome, BlobOutcome::Stored(..))
                        && let Some(w) = c.wants.get_mut(&hash)
                        && !w.http_tried.contains(&base)
                    {
                        w.http_tried.push(base);
                    }
                }
                let result = match outcome {
                    BlobOutcome::Stored(len) => {
                        return self.on_internal(Internal::Stored {
                            stream,
                            hash,
                            from: None,
                            len,
                            result: Ok(()),
                        });
                    }
                    BlobOutcome::Refused(e) => e,
                    BlobOutcome::Failed(_) => {
                        self.release(stream, hash, None);
                        return;
                    }
                };
                self.on_internal(Internal::Stored {
                    stream,
                    hash,
                    from: None,
                    len: 0,
                    result: Err(result),
                });
            }
            HttpEvent::Log { stream, base, outcome } => {
                let catalog = self.catalog.clone();
                let result = match outcome {
                    Ok(r) => r,
                    Err(f) => {
                        if let (Failed::Unreachable(why), Some(c)) = (&f, self.streams.get_mut(&stream)) {
                            report::unreachable(&mut c.http, catalog.metrics(), &stream, &base, "log", why);
                        }
                        Ok(LogProgress::Staged(0))
                    }
                };
                match &result {
                    Err(e) => {
                        if let Some(c) = self.streams.get_mut(&stream) {
                            report::tampered(
                                &mut c.http,
                                catalog.metrics(),
                                &stream,
                                &base,
                                "sent a log that does not match the signed root",
                                e,
                            );
                        }
                    }
                    // The whole log came from this source and falls short of the signed root.
                    Ok(LogProgress::Staged(n)) if *n > 0 => self.replica.reset_log_staging(&stream),
                    Ok(_) => {}
                }
                self.on_internal(Internal::LogTaken {
                    stream,
                    from: None,
                    result,
                });
            }
        }
    }

    /// A source's latest: verified here (a failure is counted as `source="http"` and bans the
    /// source), then taken like a peer's.
    fn on_http_latest(&mut self, stream: StreamId, p: Polled) {
        let catalog = self.catalog.clone();
        let metrics = catalog.metrics();
        let Some(c) = self.streams.get_mut(&stream) else { return };
        let wire = match p.manifest {
            Ok(w) => w,
            Err(Failed::Missing) => return c.http.report_ok(&p.base),
            Err(Failed::Unreachable(why)) => {
                return report::unreachable(&mut c.http, metrics, &stream, &p.base, "manifest", &why);
            }
        };
        let seq = match Signed::<ManifestRoot>::verify(&wire, &stream) {
            Ok(m) => m.body.seq,
            Err(e) => {
                metrics.verification_failure(FailureSource::Http);
                return report::tampered(
                    &mut c.http,
                    metrics,
                    &stream,
                    &p.base,
                    "its manifest does not verify",
                    &e,
                );
            }
        };
        c.http.report_ok(&p.base);
        report::manifest(&mut c.http, metrics, &stream, &p.base, seq);
        let announce: Option<Bytes> = p.announce;
        self.take_latest(stream, &wire, announce.as_deref(), None);
    }
}
