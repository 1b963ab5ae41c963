//! Response bodies with the conditional and partial request handling HLS players and CDNs use:
//! ETag/If-None-Match, single-range `Range` requests, and files streamed from disk in bounded
//! chunks (memory per request does not grow with the file).

use std::io::SeekFrom;
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::HttpError;

/// Cache policy of a response.
#[derive(Debug, Clone, Copy)]
pub enum Caching {
    /// Content-addressed: never changes.
    Immutable,
    /// Live documents (playlists, manifest): at most a second old.
    Live,
    /// Pages and API answers.
    NoStore,
}

impl Caching {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Live => "public, max-age=1",
            Caching::NoStore => "no-store",
        })
    }
}

/// Bytes read per chunk when streaming a file.
const CHUNK: usize = 64 * 1024;

/// A body that is either in memory or a file of known length.
#[derive(Debug)]
pub enum Source<'a> {
    Memory(Bytes),
    File { path: &'a Path, len: u64 },
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }
}

/// Answer a GET/HEAD for one representation, honouring If-None-Match and Range.
pub async fn respond(
    req: &HeaderMap,
    source: Source<'_>,
    content_type: &'static str,
    caching: Caching,
    etag: Option<&str>,
) -> Result<Response, HttpError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, caching.value());
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(tag) = etag {
        if let Ok(v) = HeaderValue::from_str(tag) {
            headers.insert(header::ETAG, v);
        }
        if if_none_match(req, tag) {
            return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
        }
    }
    let total = source.len();
    let range = match req.get(header::RANGE).map(|v| parse_range(v.as_bytes(), total)) {
        None | Some(RangeReq::Ignore) => None,
        Some(RangeReq::Unsatisfiable) => {
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).map_err(|_| HttpError::Internal)?,
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response());
        }
        Some(RangeReq::Range(a, b)) => Some((a, b)),
    };
    let (status, start, len) = match range {
        Some((a, b)) => {
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {a}-{b}/{total}")).map_err(|_| HttpError::Internal)?,
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, total),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = match source {
        Source::Memory(b) => Body::from(b.slice(start as usize..(start + len) as usize)),
        Source::File { path, .. } => {
            let mut f = tokio::fs::File::open(path).await.map_err(HttpError::from_io)?;
            if start > 0 {
                f.seek(SeekFrom::Start(start)).await.map_err(HttpError::from_io)?;
            }
            Body::from_stream(ReaderStream::with_capacity(f.take(len), CHUNK))
        }
    };
    Ok((status, headers, body).into_response())
}

fn if_none_match(req: &HeaderMap, tag: &str) -> bool {
    req.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == tag || t == "*")
        })
    })
}

#[derive(Debug, PartialEq, Eq)]
enum RangeReq {
    /// Not a form we serve partially (several ranges, other units): send the whole body.
    Ignore,
    Unsatisfiable,
    /// Inclusive byte positions.
    Range(u64, u64),
}

fn parse_range(v: &[u8], total: u64) -> RangeReq {
    let Ok(s) = std::str::from_utf8(v) else {
        return RangeReq::Ignore;
    };
    let Some(spec) = s.trim().strip_prefix("bytes=") else {
        return RangeReq::Ignore;
    };
    if spec.contains(',') {
        return RangeReq::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |x: &str| x.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeReq::Ignore,
        (true, false) => match parse(b) {
            Some(0) => RangeReq::Unsatisfiable,
            Some(n) if total > 0 => RangeReq::Range(total.saturating_sub(n), total - 1),
            Some(_) => RangeReq::Unsatisfiable,
            None => RangeReq::Ignore,
        },
        (false, _) => {
            let Some(start) = parse(a) else {
                return RangeReq::Ignore;
            };
            let end = if b.is_empty() { Some(u64::MAX) } else { parse(b) };
            match end {
                None => RangeReq::Ignore,
                Some(end) if end < start => RangeReq::Ignore,
                Some(_) if start >= total => RangeReq::Unsatisfiable,
                Some(end) => RangeReq::Range(start, end.min(total - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        assert_eq!(parse_range(b"bytes=0-9", 100), Range(0, 9));
        assert_eq!(parse_range(b"bytes=90-", 100), Range(90, 99));
        assert_eq!(parse_range(b"bytes=-10", 100), Range(90, 99));
        assert_eq!(parse_range(b"bytes=-1000", 100), Range(0, 99));
        assert_eq!(parse_range(b"bytes=50-1000", 100), Range(50, 99));
        assert_eq!(parse_range(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range(b"items=0-1", 100), Ignore);
        assert_eq!(parse_range(b"bytes=9-1", 100), Ignore);
        assert_eq!(parse_range(b"bytes=x-1", 100), Ignore);
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=18446744073709551615-", 10), Unsatisfiable);
        assert_eq!(parse_range(&[0xff, 0xfe], 10), Ignore);
    }

    #[test]
    fn etags_match_lists_weak_and_star() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(if_none_match(&h, "\"b\""));
        assert!(!if_none_match(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, "\"c\""));
    }
}
