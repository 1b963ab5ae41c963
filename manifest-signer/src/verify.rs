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
    pub failures: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.manifest_seq.is_some()
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
        writeln!(
            f,
            "playlists   {} byte-identical to the signed manifest",
            self.playlists_verified
        )?;
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
        Ok(Some(_)) => report.fail(format!(
            "{rel}: differs from the playlist rendered from the signed manifest"
        )),
        Ok(None) => report.fail(format!("{rel}: missing")),
        Err(e) => report.fail(format!("{rel}: {e}")),
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
