//! Check a stored or served stream against its signed manifest: signature, log, playlists,
//! and every segment's bytes. Used by `hlswarm verify DIR|URL`.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

use crate::merkle::{LogEntry, MerkleLog};
use crate::objects::{Container, ManifestRoot, Signed, StreamAnnounce};
use crate::playlist::{self, init_path, segment_path};
use crate::store::{ANNOUNCE_FILE, LOG_FILE, MANIFEST_FILE};
use crate::{Error, Hash, Result, StreamId, now_ms};

/// Where stream files come from: a directory or an HTTP origin. Paths are relative to the
/// stream's directory (`manifest.json`, `seg/<hash>.m4s`, ...). `Ok(None)` means not there.
pub trait Source {
    fn get(&self, rel: &str, limit: u64) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
}

/// Largest log file read.
const MAX_LOG_BYTES: u64 = 256 * 1024 * 1024;

/// The outcome of a verification: what was checked and everything that failed.
#[derive(Debug, Default)]
pub struct Report {
    pub stream: Option<StreamId>,
    pub manifest_seq: Option<u64>,
    pub title: Option<String>,
    pub renditions: Vec<String>,
    pub segments_verified: u64,
    pub inits_verified: u64,
    pub archive_verified: u64,
    pub archive_missing: u64,
    pub log_entries: Option<u64>,
    pub playlists_verified: u64,
    /// Complete segments of LL-HLS playlists whose listed parts make up exactly the segment.
    pub parts_verified: u64,
    pub failures: Vec<String>,
    /// When the manifest was signed (its `time_ms`), and when it was checked (ms since the epoch).
    pub signed_ms: Option<u64>,
    pub checked_ms: u64,
    /// Every rendition of the manifest is ended (`EXT-X-ENDLIST`): old by nature.
    pub ended: bool,
    /// Older than this (ms) and not ended: the report warns that it is not the live edge. Set
    /// by the caller (`hlswarm verify --max-age-seconds`); a warning, not a failure.
    pub max_age_ms: Option<u64>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.manifest_seq.is_some()
    }

    /// How long before the check the manifest was signed (negative: signed "in the future", a
    /// clock is off).
    pub fn age_ms(&self) -> Option<i128> {
        self.signed_ms.map(|t| i128::from(self.checked_ms) - i128::from(t))
    }

    /// A live (not ended) stream whose newest manifest is older than `max_age_ms`.
    pub fn is_old(&self) -> bool {
        !self.ended && matches!((self.age_ms(), self.max_age_ms), (Some(age), Some(max)) if age > i128::from(max))
    }

    fn fail(&mut self, what: impl fmt::Display) {
        self.failures.push(what.to_string());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.stream {
            writeln!(f, "stream      {s} (fingerprint {})", s.fingerprint())?;
        }
        if let Some(t) = &self.title {
            writeln!(f, "title       {t:?}")?;
        }
        match self.manifest_seq {
            Some(seq) => writeln!(
                f,
                "manifest    seq {seq}, signature ok, renditions {}",
                self.renditions.join(", ")
            )?,
            None => writeln!(f, "manifest    NOT VERIFIED")?,
        }
        if let (Some(t), Some(age)) = (self.signed_ms, self.age_ms()) {
            let state = if self.ended { ", the stream ended" } else { "" };
            if age < 0 {
                writeln!(
                    f,
                    "signed      {} ({} in the future: a clock is off{state})",
                    iso8601_utc(t),
                    human_ms(age.unsigned_abs())
                )?;
            } else {
                writeln!(
                    f,
                    "signed      {} ({} ago{state})",
                    iso8601_utc(t),
                    human_ms(age.unsigned_abs())
                )?;
            }
            if self.is_old()
                && let Some(max) = self.max_age_ms
            {
                writeln!(
                    f,
                    "age         WARNING: older than {}: not the live edge of a live stream (an old snapshot, or a mirror that stopped following)",
                    human_ms(u128::from(max))
                )?;
            }
        }
        writeln!(
            f,
            "playlists   {} byte-identical to the signed manifest",
            self.playlists_verified
        )?;
        if self.parts_verified > 0 {
            writeln!(
                f,
                "parts       LL-HLS: {} segments are exactly the parts listed for them",
                self.parts_verified
            )?;
        }
        writeln!(
            f,
            "live window {} segments + {} init segments verified (BLAKE3)",
            self.segments_verified, self.inits_verified
        )?;
        match self.log_entries {
            Some(n) => writeln!(
                f,
                "archive     log of {n} entries matches the signed root; {} archived segments verified, {} pruned",
                self.archive_verified, self.archive_missing
            )?,
            None => writeln!(f, "archive     no log published")?,
        }
        if self.failures.is_empty() {
            write!(f, "result      OK")
        } else {
            writeln!(f, "result      {} FAILURE(S):", self.failures.len())?;
            for x in &self.failures {
                writeln!(f, "  - {x}")?;
            }
            Ok(())
        }
    }
}

/// What to check beyond the live window.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// Also verify archived segments named by the log (those still present).
    pub archive: bool,
}

/// Verify one stream. `expected` pins the key; the stream id in a path or URL is that pin.
pub async fn verify_stream<S: Source>(src: &S, expected: &StreamId, opts: VerifyOptions) -> Report {
    let mut report = Report {
        stream: Some(*expected),
        checked_ms: now_ms(),
        ..Report::default()
    };
    let manifest = match load_manifest(src, expected).await {
        Ok(m) => m,
        Err(e) => {
            report.fail(format!("{MANIFEST_FILE}: {e} [{}]", e.code()));
            return report;
        }
    };
    let m = &manifest.body;
    report.manifest_seq = Some(m.seq);
    report.signed_ms = Some(m.time_ms);
    report.ended = !m.renditions.is_empty() && m.renditions.iter().all(|r| r.ended);
    report.renditions = m.renditions.iter().map(|r| r.name.clone()).collect();

    match src
        .get(ANNOUNCE_FILE, crate::objects::limits::MAX_ANNOUNCE_BYTES as u64)
        .await
    {
        Ok(Some(bytes)) => match Signed::<StreamAnnounce>::verify(&bytes, expected) {
            Ok(a) => {
                if let Err(e) = a.body.check_fresh(now_ms()) {
                    tracing::info!("{ANNOUNCE_FILE}: {e}");
                }
                report.title = Some(a.body.title);
            }
            Err(e) => report.fail(format!("{ANNOUNCE_FILE}: {e} [{}]", e.code())),
        },
        Ok(None) => {}
        Err(e) => report.fail(format!("{ANNOUNCE_FILE}: {e}")),
    }

    check_playlist(src, playlist::MASTER, &playlist::render_master(m), &mut report).await;
    let mut checked = BTreeSet::new();
    for r in &m.renditions {
        check_playlist(
            src,
            &playlist::media_playlist_name(&r.name),
            &playlist::render_media(r),
            &mut report,
        )
        .await;
        if let Some(init) = &r.init
            && checked.insert(init.hash)
        {
            check_blob(src, &init_path(&init.hash), &init.hash, init.size, true, &mut report).await;
            report.inits_verified += 1;
        }
        for s in &r.segments {
            if let Some(init) = s.init
                && checked.insert(init)
            {
                check_blob(
                    src,
                    &init_path(&init),
                    &init,
                    crate::objects::limits::MAX_INIT_BYTES,
                    false,
                    &mut report,
                )
                .await;
                report.inits_verified += 1;
            }
            if check_blob(
                src,
                &segment_path(&s.hash, r.container),
                &s.hash,
                s.size,
                true,
                &mut report,
            )
            .await
            {
                report.segments_verified += 1;
            }
            checked.insert(s.hash);
        }
    }

    match src.get(LOG_FILE, MAX_LOG_BYTES).await {
        Ok(Some(bytes)) => check_log(src, &bytes, m, &checked, opts, &mut report).await,
        Ok(None) if m.log.size > 0 => {
            tracing::info!("no {LOG_FILE} published: archive not checked")
        }
        Ok(None) => {}
        Err(e) => report.fail(format!("{LOG_FILE}: {e}")),
    }
    report
}

/// `ms` since the Unix epoch as ISO 8601 UTC, to the millisecond: `2026-12-02T18:20:01.123Z`.
pub fn iso8601_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), in unsigned arithmetic: the epoch is
    // shifted to 0000-03-01 so every count is non-negative.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A duration for people: `850 ms`, `12.3 s`, `4.5 min`, `2.0 h`, `3.1 days`.
fn human_ms(ms: u128) -> String {
    let f = ms as f64;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{:.1} s", f / 1e3),
        120_000..7_200_000 => format!("{:.1} min", f / 6e4),
        7_200_000..172_800_000 => format!("{:.1} h", f / 3.6e6),
        _ => format!("{:.1} days", f / 8.64e7),
    }
}

async fn load_manifest<S: Source>(src: &S, expected: &StreamId) -> Result<Signed<ManifestRoot>> {
    let bytes = src
        .get(MANIFEST_FILE, crate::objects::limits::MAX_MANIFEST_BYTES as u64)
        .await?
        .ok_or_else(|| Error::Malformed("no signed manifest published".into()))?;
    Signed::<ManifestRoot>::verify(&bytes, expected)
}

async fn check_playlist<S: Source>(src: &S, rel: &str, expected: &str, report: &mut Report) {
    match src.get(rel, 1024 * 1024).await {
        Ok(Some(bytes)) if bytes == expected.as_bytes() => report.playlists_verified += 1,
        // LL-HLS (an origin's): the classic playlist inside it must be the signed one, and
        // each complete segment exactly the parts listed for it.
        Ok(Some(bytes)) if bytes.windows(16).any(|w| w == b"#EXT-X-PART-INF:") => {
            let text = String::from_utf8_lossy(&bytes);
            if crate::playlist_ll::classic_of(&text) == expected {
                report.playlists_verified += 1;
                check_parts(src, rel, &text, report).await;
            } else {
                report.fail(format!(
                    "{rel}: its segments differ from the playlist rendered from the signed manifest"
                ));
            }
        }
        Ok(Some(_)) => report.fail(format!(
            "{rel}: differs from the playlist rendered from the signed manifest"
        )),
        Ok(None) => report.fail(format!("{rel}: missing")),
        Err(e) => report.fail(format!("{rel}: {e}")),
    }
}

/// The parts an LL-HLS playlist lists for each complete segment, concatenated, are that
/// segment (its BLAKE3 is the URI's, which the classic check tied to the signed manifest).
/// Parts of the segment in progress have no segment to check against yet.
async fn check_parts<S: Source>(src: &S, rel: &str, text: &str, report: &mut Report) {
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attrs
                .split(',')
                .find_map(|a| a.strip_prefix("URI=\""))
                .map(|u| u.trim_end_matches('"'));
            parts.extend(uri);
            continue;
        }
        if line.starts_with('#') || line.is_empty() || parts.is_empty() {
            continue;
        }
        let Some(hash) = line
            .strip_prefix("seg/")
            .and_then(|f| f.split_once('.'))
            .and_then(|(h, _)| h.parse::<Hash>().ok())
        else {
            parts.clear();
            continue;
        };
        let mut hasher = blake3::Hasher::new();
        let mut complete = true;
        for p in parts.drain(..) {
            match src.get(p, u64::from(crate::part::MAX_PART_BYTES)).await {
                Ok(Some(bytes)) => {
                    hasher.update(&bytes);
                }
                // Parts of old segments may have been dropped meanwhile: nothing to compare.
                _ => complete = false,
            }
        }
        if !complete {
            continue;
        }
        if Hash(*hasher.finalize().as_bytes()) == hash {
            report.parts_verified += 1;
        } else {
            report.fail(format!("{rel}: the parts listed for {line} are not that segment"));
        }
    }
}

/// True when the blob is present and its hash matches.
async fn check_blob<S: Source>(
    src: &S,
    rel: &str,
    hash: &Hash,
    size: u64,
    required: bool,
    report: &mut Report,
) -> bool {
    match src.get(rel, size).await {
        Ok(Some(bytes)) => {
            let actual = Hash::of(&bytes);
            if actual == *hash && (!required || bytes.len() as u64 == size) {
                true
            } else {
                let e = Error::HashMismatch {
                    what: rel.to_string(),
                    expected: hash.to_hex(),
                    actual: actual.to_hex(),
                };
                report.fail(format!("{e} [{}]", e.code()));
                false
            }
        }
        Ok(None) => {
            report.fail(format!("{rel}: missing"));
            false
        }
        Err(e) => {
            report.fail(format!("{rel}: {e} [{}]", e.code()));
            false
        }
    }
}

async fn check_log<S: Source>(
    src: &S,
    bytes: &[u8],
    m: &ManifestRoot,
    checked: &BTreeSet<Hash>,
    opts: VerifyOptions,
    report: &mut Report,
) {
    let mut log = MerkleLog::new();
    let mut entries = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let parsed: std::result::Result<LogEntry, _> = serde_json::from_slice(line);
        match parsed
            .map_err(|e| Error::Malformed(e.to_string()))
            .and_then(|e| e.leaf_hash().map(|h| (e, h)))
        {
            Ok((e, h)) => {
                log.push(h);
                entries.push(e);
            }
            Err(e) => {
                report.fail(format!("{LOG_FILE} line {}: {e}", i + 1));
                return;
            }
        }
    }
    match log.root_at(m.log.size) {
        Ok(root) if root == m.log.root => report.log_entries = Some(m.log.size),
        Ok(_) => {
            report.fail(format!(
                "{LOG_FILE}: root of the first {} entries does not match the signed log root [chain_break]",
                m.log.size
            ));
            return;
        }
        Err(_) => {
            report.fail(format!(
                "{LOG_FILE}: has {} entries, the signed root covers {}",
                log.len(),
                m.log.size
            ));
            return;
        }
    }
    if !opts.archive {
        return;
    }
    for e in entries.iter().take(m.log.size as usize) {
        let s = &e.segment;
        if checked.contains(&s.hash) {
            continue;
        }
        let container = if s.init.is_some() {
            Container::Fmp4
        } else {
            Container::Ts
        };
        let rel = segment_path(&s.hash, container);
        match src.get(&rel, s.size).await {
            Ok(Some(bytes)) if Hash::of(&bytes) == s.hash => report.archive_verified += 1,
            Ok(Some(bytes)) => {
                let e = Error::HashMismatch {
                    what: rel,
                    expected: s.hash.to_hex(),
                    actual: Hash::of(&bytes).to_hex(),
                };
                report.fail(format!("{e} [{}]", e.code()));
            }
            Ok(None) => report.archive_missing += 1,
            Err(e) => report.fail(format!("{rel}: {e}")),
        }
    }
}

/// A stream directory on disk.
#[derive(Debug)]
pub struct DirSource(pub std::path::PathBuf);

impl Source for DirSource {
    async fn get(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt;
        let path = self.0.join(rel);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path)(e)),
        };
        let mut buf = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(Error::io("read", &path))?;
        if buf.len() as u64 > limit {
            return Err(Error::Oversize {
                what: rel.to_string(),
                actual: buf.len() as u64,
                limit,
            });
        }
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_times_print_as_iso_8601_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601_utc(1_798_761_601_123), "2027-01-01T00:00:01.123Z");
        assert_eq!(iso8601_utc(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_report_tells_the_age_and_warns_only_for_an_old_live_stream() {
        let mut r = Report {
            manifest_seq: Some(3),
            signed_ms: Some(1_000_000),
            checked_ms: 1_000_000 + 3_600_000,
            max_age_ms: Some(60_000),
            ..Report::default()
        };
        assert_eq!(r.age_ms(), Some(3_600_000));
        assert!(r.is_old());
        let text = r.to_string();
        assert!(
            text.contains("signed      1970-01-01T00:16:40.000Z (60.0 min ago)"),
            "{text}"
        );
        assert!(text.contains("WARNING: older than 60.0 s"), "{text}");
        assert!(r.ok(), "old is a warning, not a failure");
        r.ended = true;
        assert!(!r.is_old());
        let text = r.to_string();
        assert!(
            text.contains("ago, the stream ended)") && !text.contains("WARNING"),
            "{text}"
        );
        r.ended = false;
        r.checked_ms = 1_000_000 + 5_000;
        assert!(!r.is_old());
        r.checked_ms = 999_000;
        assert!(r.to_string().contains("(1.0 s in the future: a clock is off)"));
    }
}
