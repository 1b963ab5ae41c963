//! What the drivers do with a source's [`Change`]: log it once with its reason and count it in
//! /metrics. Shared by the HTTP-only mirror and the swarm's HTTP fallback.

use std::time::Instant;

use manifest_signer::StreamId;

use super::{BACKOFF_MIN, Bad, Change, HttpSources};
use crate::metrics::{Metrics, SwarmMetrics};

/// No usable answer: back off; logged when the backoff starts, counted each time.
pub fn unreachable(s: &mut HttpSources, m: &Metrics, stream: &StreamId, base: &str, what: &str, why: &str) {
    SwarmMetrics::add(&m.http_sources.backoffs, 1);
    if let Change::BackedOff(d) = s.report_bad(base, Instant::now(), Bad::Unreachable) {
        if d == BACKOFF_MIN {
            tracing::warn!(%stream, %base, what, error = why, "HTTP source did not answer; backing off");
        } else {
            tracing::debug!(%stream, %base, what, error = why, backoff = ?d, "HTTP source still not answering");
        }
    }
}

/// Bytes that failed verification: the source is banned (logged and counted once). The
/// verification failure itself is counted where it was checked (`source="http"`).
pub fn tampered(
    s: &mut HttpSources,
    m: &Metrics,
    stream: &StreamId,
    base: &str,
    reason: &'static str,
    e: &manifest_signer::Error,
) {
    if let Change::Banned(d) = s.report_bad(base, Instant::now(), Bad::Tampered(reason)) {
        SwarmMetrics::add(&m.http_sources.bans, 1);
        tracing::warn!(%stream, %base, reason, code = e.code(), error = %e, ban_seconds = d.as_secs(), "HTTP source banned");
    }
}

/// A verified manifest of `seq` from `base`; a source found behind is logged once and counted.
pub fn manifest(s: &mut HttpSources, m: &Metrics, stream: &StreamId, base: &str, seq: u64) {
    if let Change::Behind { seq, freshest } = s.report_manifest(base, seq) {
        SwarmMetrics::add(&m.http_sources.behind, 1);
        tracing::warn!(%stream, %base, seq, freshest, "HTTP source is behind: it serves an older manifest than another source; its manifest is not used");
    }
}

/// Error codes that mean bytes were forged or mangled (not merely old, expired or missing).
pub fn is_forgery(code: &str) -> bool {
    matches!(
        code,
        "bad_signature" | "wrong_key" | "malformed" | "non_canonical" | "hash_mismatch" | "invalid_proof" | "oversize"
    )
}
