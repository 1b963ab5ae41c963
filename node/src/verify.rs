//! `hlswarm verify DIR|URL`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use manifest_signer::verify::{DirSource, Source, VerifyOptions, verify_stream};
use manifest_signer::{Error, StreamId};

use crate::cli::VerifyArgs;

pub async fn run(_data_dir: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let opts = VerifyOptions { archive: args.archive };
    let pinned: Option<StreamId> = args.stream.as_deref().map(str::parse).transpose().context("--stream")?;
    let mut all_ok = true;
    if args.target.starts_with("http://") || args.target.starts_with("https://") {
        let (base, id) = stream_base_url(&args.target, pinned)?;
        let src = HttpSource::new(base)?;
        let mut report = verify_stream(&src, &id, opts).await;
        all_ok &= judge(&mut report, &args);
    } else {
        let targets = stream_dirs(Path::new(&args.target), pinned)?;
        for (dir, id) in targets {
            println!("== {}", dir.display());
            let mut report = verify_stream(&DirSource(dir), &id, opts).await;
            all_ok &= judge(&mut report, &args);
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Print the report, with the age warning past `--max-age-seconds`; whether it passes: valid, and
/// not old when `--fail-if-old` asks.
fn judge(report: &mut manifest_signer::verify::Report, args: &VerifyArgs) -> bool {
    report.max_age_ms = Some(args.max_age_seconds.saturating_mul(1000));
    println!("{report}");
    if report.is_old() && args.fail_if_old {
        println!("result      FAILED: --fail-if-old and the stream is older than --max-age-seconds");
        return false;
    }
    report.ok()
}

/// Stream directories to check: the target itself if it holds a manifest, else each stream under
/// `target/streams/`. The directory name is the stream id and so the key trusted.
fn stream_dirs(target: &Path, pinned: Option<StreamId>) -> anyhow::Result<Vec<(PathBuf, StreamId)>> {
    if target.join(manifest_signer::store::MANIFEST_FILE).is_file() {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let id = match (pinned, name.parse::<StreamId>()) {
            (Some(p), _) => p,
            (None, Ok(id)) => id,
            (None, Err(_)) => anyhow::bail!("{} is not named by a stream id; pass --stream ID", target.display()),
        };
        return Ok(vec![(target.to_path_buf(), id)]);
    }
    let streams = target.join("streams");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&streams)
        .with_context(|| format!("{} holds no manifest.json and no streams/ directory", target.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = name.parse::<StreamId>() else {
            continue;
        };
        if pinned.is_none_or(|p| p == id) {
            out.push((entry.path(), id));
        }
    }
    out.sort();
    if out.is_empty() {
        anyhow::bail!("no streams found under {}", streams.display());
    }
    Ok(out)
}

/// From a watch link or stream URL to (`.../streams/<id>/`, id).
fn stream_base_url(target: &str, pinned: Option<StreamId>) -> anyhow::Result<(reqwest::Url, StreamId)> {
    let url = reqwest::Url::parse(target).context("not a URL")?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let found = segments
        .windows(2)
        .find(|w| w[0] == "streams" || w[0] == "watch")
        .map(|w| w[1]);
    let id = match (pinned, found.map(str::parse::<StreamId>)) {
        (Some(p), _) => p,
        (None, Some(Ok(id))) => id,
        (None, Some(Err(e))) => anyhow::bail!("the URL's stream id is invalid: {e}"),
        (None, None) => anyhow::bail!("the URL names no stream (/streams/<id>/ or /watch/<id>); pass --stream ID"),
    };
    let base = url.join(&format!("/streams/{id}/"))?;
    Ok((base, id))
}

struct HttpSource {
    base: reqwest::Url,
    client: reqwest::Client,
}

impl HttpSource {
    fn new(base: reqwest::Url) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(HttpSource { base, client })
    }
}

impl Source for HttpSource {
    async fn get(&self, rel: &str, limit: u64) -> manifest_signer::Result<Option<Vec<u8>>> {
        let url = self.base.join(rel).map_err(|e| Error::Malformed(e.to_string()))?;
        let io = |e: reqwest::Error| Error::Io {
            op: "GET",
            path: url.to_string().into(),
            source: std::io::Error::other(e),
        };
        let mut resp = self.client.get(url.clone()).send().await.map_err(io)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp_status = resp.status();
        if !resp_status.is_success() {
            return Err(Error::Io {
                op: "GET",
                path: url.to_string().into(),
                source: std::io::Error::other(format!("HTTP {resp_status}")),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(io)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(Error::Oversize {
                    what: rel.to_string(),
                    actual: body.len() as u64,
                    limit,
                });
            }
        }
        Ok(Some(body))
    }
}
