//! GETs from an HTTP source, each with a timeout and a size cap, telling "not there" (404/410:
//! an honest answer) from "no answer" (everything else).

use std::time::Duration;

use bytes::Bytes;
use manifest_signer::StreamId;
use manifest_signer::store::{ANNOUNCE_FILE, MANIFEST_FILE};

/// Largest signed object (manifest, announce) fetched.
pub const MAX_OBJECT_BYTES: u64 = 512 * 1024;
/// Longest wait for a source's manifest and announce.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a blob.
pub const BLOB_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for a stream's log.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a GET gave no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// 404 or 410: the source does not have it (yet).
    Missing,
    /// No usable answer, with what went wrong.
    Unreachable(String),
}

/// The client the fetchers share: connection timeout only; each request sets its own.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// GET `url`: at most `limit` bytes within `timeout`.
pub async fn get(client: &reqwest::Client, url: &str, limit: u64, timeout: Duration) -> Result<Bytes, Failed> {
    let work = async {
        let mut r = client
            .get(url)
            .send()
            .await
            .map_err(|e| Failed::Unreachable(e.without_url().to_string()))?;
        let status = r.status();
        if matches!(status.as_u16(), 404 | 410) {
            return Err(Failed::Missing);
        }
        if !status.is_success() {
            return Err(Failed::Unreachable(format!("HTTP {status}")));
        }
        if r.content_length().is_some_and(|n| n > limit) {
            return Err(Failed::Unreachable(format!("body larger than {limit} bytes")));
        }
        let mut out = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| Failed::Unreachable(e.without_url().to_string()))?
        {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(Failed::Unreachable(format!("body larger than {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(Failed::Unreachable(format!("no answer within {timeout:?}"))))
}

/// What one source answered when polled.
#[derive(Debug)]
pub struct Polled {
    pub base: String,
    /// Its manifest wire bytes (unverified).
    pub manifest: Result<Bytes, Failed>,
    /// Its announce wire bytes (unverified), if it has one.
    pub announce: Option<Bytes>,
}

/// Ask one source for the stream's manifest and announce.
pub async fn poll(client: &reqwest::Client, base: String, stream: StreamId) -> Polled {
    let url = |f: &str| format!("{base}streams/{stream}/{f}");
    let (m_url, a_url) = (url(MANIFEST_FILE), url(ANNOUNCE_FILE));
    let (manifest, announce) = tokio::join!(
        get(client, &m_url, MAX_OBJECT_BYTES, POLL_TIMEOUT),
        get(client, &a_url, MAX_OBJECT_BYTES, POLL_TIMEOUT),
    );
    Polled {
        base,
        manifest,
        announce: announce.ok(),
    }
}

/// Ask every source at once.
pub async fn poll_all(client: &reqwest::Client, bases: Vec<String>, stream: StreamId) -> Vec<Polled> {
    futures::future::join_all(bases.into_iter().map(|b| poll(client, b, stream))).await
}

/// The URL of a blob at a source.
pub fn blob_url(base: &str, stream: &StreamId, hash: &manifest_signer::Hash, ext: &str) -> String {
    format!("{base}streams/{stream}/seg/{hash}.{ext}")
}

/// The URL of a stream's log at a source.
pub fn log_url(base: &str, stream: &StreamId) -> String {
    format!("{base}streams/{stream}/{}", manifest_signer::store::LOG_FILE)
}
