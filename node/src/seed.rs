//! What `hlswarm seed` follows: a stream id, a watch URL, or a share bundle, resolved into the
//! stream id (the trust anchor) and hints (HTTP origins and libp2p peers: untrusted, only where
//! to look). A watch URL's node is asked for the stream's STREAM_ANNOUNCE, whose hints are
//! used once its signature checks out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use manifest_signer::{Signed, StreamAnnounce, StreamId};

use crate::replica::Replica;
use crate::swarm::Follow;

/// Largest signed object fetched over HTTP.
const MAX_OBJECT_BYTES: usize = 512 * 1024;

#[derive(serde::Deserialize)]
struct Bundle {
    stream: String,
    #[serde(default)]
    hints: manifest_signer::Hints,
}

/// Resolve every source; fails on the first that names no stream.
pub async fn resolve(sources: &[String]) -> anyhow::Result<Vec<Follow>> {
    let client = client()?;
    let mut out: Vec<Follow> = Vec::new();
    for s in sources {
        let f = resolve_one(&client, s.trim()).await?;
        match out.iter_mut().find(|o| o.stream == f.stream) {
            Some(o) => {
                o.http.extend(f.http);
                o.peers.extend(f.peers);
            }
            None => out.push(f),
        }
    }
    Ok(out)
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("HTTP client")
}

async fn resolve_one(client: &reqwest::Client, s: &str) -> anyhow::Result<Follow> {
    if s.starts_with('{') {
        anyhow::ensure!(s.len() <= 64 * 1024, "share bundle larger than 64 KiB");
        let b: Bundle = serde_json::from_str(s).context("share bundle is not the JSON the watch page copies")?;
        let stream: StreamId = b
            .stream
            .parse()
            .map_err(|e| anyhow::anyhow!("share bundle stream id: {e}"))?;
        return Ok(follow(stream, &b.hints));
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        let (base, stream) = split_url(s).with_context(|| {
            format!("{s} is not a watch URL (…/watch/<stream id>) or a stream URL (…/streams/<stream id>/…)")
        })?;
        let mut f = Follow {
            stream,
            http: vec![base.clone()],
            peers: Vec::new(),
        };
        // The node's own swarm addresses (it may have signed nothing yet, so no announce).
        if let Ok(body) = get_bounded(client, &format!("{base}api/streams")).await
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(addrs) = v["node"]["p2p"].as_array()
        {
            f.peers = addrs.iter().filter_map(|a| a.as_str()?.parse().ok()).take(16).collect();
        }
        // The node's announce, if it verifies, says where else the stream is.
        match fetch_announce(client, &base, &stream).await {
            Ok(a) => {
                let more = follow(stream, &a.body.hints);
                for h in more.http {
                    if !f.http.contains(&h) {
                        f.http.push(h);
                    }
                }
                f.peers.extend(more.peers);
            }
            Err(e) => {
                tracing::info!(%base, error = %e, "no STREAM_ANNOUNCE from the watch URL's node (yet); following it as an origin")
            }
        }
        return Ok(f);
    }
    let stream: StreamId = s
        .parse()
        .map_err(|e| anyhow::anyhow!("{s:?} is not a stream id, a watch URL or a share bundle: {e}"))?;
    Ok(Follow {
        stream,
        http: Vec::new(),
        peers: Vec::new(),
    })
}

fn follow(stream: StreamId, hints: &manifest_signer::Hints) -> Follow {
    let http = hints
        .http
        .iter()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(|u| if u.ends_with('/') { u.clone() } else { format!("{u}/") })
        .take(8)
        .collect();
    let peers = hints.libp2p.iter().filter_map(|a| a.parse().ok()).take(16).collect();
    Follow { stream, http, peers }
}

/// `https://host/prefix/watch/<id>` or `https://host/prefix/streams/<id>/...` -> (base, id).
fn split_url(url: &str) -> Option<(String, StreamId)> {
    let no_query = url.split(['?', '#']).next()?;
    for marker in ["/watch/", "/streams/"] {
        if let Some(i) = no_query.rfind(marker) {
            let base = &no_query[..=i];
            let id = no_query[i + marker.len()..].split('/').next()?;
            return Some((base.to_string(), id.parse().ok()?));
        }
    }
    None
}

async fn get_bounded(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let mut r = client.get(url).send().await?.error_for_status()?;
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        anyhow::ensure!(out.len() + chunk.len() <= MAX_OBJECT_BYTES, "{url}: response too large");
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn fetch_announce(client: &reqwest::Client, base: &str, id: &StreamId) -> anyhow::Result<Signed<StreamAnnounce>> {
    let wire = get_bounded(client, &format!("{base}streams/{id}/announce.json")).await?;
    Ok(Signed::<StreamAnnounce>::verify(&wire, id)?)
}

/// Without the swarm: mirror a stream from its HTTP sources, verified the same way
/// ([`crate::sources::mirror`]). `ban`: how long a source whose bytes fail verification is left
/// alone.
pub fn spawn_http_mirror(
    replica: Arc<Replica>,
    f: Follow,
    ban: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let mirror = match crate::sources::mirror::Mirror::new(replica, f.stream, f.http, ban) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(stream = %f.stream, error = %e, "cannot start the HTTP mirror");
                return;
            }
        };
        tokio::select! {
            () = stop => {}
            () = mirror.run() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn watch_and_stream_urls_name_the_stream() {
        let id = manifest_signer::StreamKey::from_seed([5; 32]).stream_id();
        let (base, got) = split_url(&format!("http://127.0.0.1:9/watch/{id}?origin=x")).unwrap();
        assert_eq!((base.as_str(), got), ("http://127.0.0.1:9/", id));
        let (base, got) = split_url(&format!("https://n.example/live/streams/{id}/master.m3u8")).unwrap();
        assert_eq!((base.as_str(), got), ("https://n.example/live/", id));
        assert!(split_url("https://n.example/watch/nope").is_none());
        assert!(split_url("https://n.example/").is_none());
    }

    #[tokio::test]
    async fn bundles_and_ids_resolve() {
        let id = manifest_signer::StreamKey::from_seed([6; 32]).stream_id();
        let bundle = format!(
            r#"{{"stream":"{id}","hints":{{"http":["http://127.0.0.1:9"],"libp2p":["/ip4/127.0.0.1/tcp/9"],"trackers":[],"moq":[]}}}}"#
        );
        let f = resolve(&[bundle, id.to_string()]).await.unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].stream, id);
        assert_eq!(f[0].http, vec!["http://127.0.0.1:9/".to_string()]);
        assert_eq!(f[0].peers.len(), 1);
        assert!(resolve(&["not a stream".into()]).await.is_err());
    }
}
