//! The HTTP counterpart of `hlswarm moq-watch`, for bench/moq.sh: poll a node's signed
//! `manifest.json` every `--interval-ms`, verify it (signature and chain), fetch each new segment
//! of the first rendition and check its BLAKE3, and print it with its delay since signing (local
//! clock at verified arrival minus `time_ms` of the first manifest that listed it), in the same
//! format as moq-watch.
//!
//! ```text
//! cargo run --release -p node --example http-watch -- http://127.0.0.1:8080/streams/<id>/ --interval-ms 1000 --count 20
//! ```

use std::collections::HashSet;
use std::time::Duration;

use manifest_signer::{Hash, ManifestChain, StreamId};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: http-watch URL/streams/<id>/ [--interval-ms N] [--count N]"))?;
    let (mut interval, mut count) = (1000u64, u64::MAX);
    while let Some(a) = args.next() {
        let v: u64 = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))?
            .parse()?;
        match a.as_str() {
            "--interval-ms" => interval = v,
            "--count" => count = v,
            _ => anyhow::bail!("unknown argument {a}"),
        }
    }
    let base = if base.ends_with('/') { base } else { format!("{base}/") };
    let id: StreamId = base
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("URL must end in /streams/<id>/: {e}"))?;
    let http = reqwest::Client::new();
    let mut chain = ManifestChain::new(id);
    let mut done: HashSet<Hash> = HashSet::new();
    let mut etag: Option<String> = None;
    let mut printed = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while printed < count {
        tick.tick().await;
        let mut req = http.get(format!("{base}manifest.json"));
        if let Some(e) = &etag {
            req = req.header("if-none-match", e);
        }
        let Ok(resp) = req.send().await else { continue };
        if resp.status() != reqwest::StatusCode::OK {
            continue;
        }
        etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let wire = resp.bytes().await?;
        let m = match chain.accept_wire(&wire) {
            Ok(m) => m,
            Err(manifest_signer::Error::Replay { .. }) => continue,
            Err(e) => {
                println!("refused reason=manifest {e}");
                continue;
            }
        };
        let Some(r) = m.body.renditions.first() else { continue };
        for s in &r.segments {
            if done.contains(&s.hash) {
                continue;
            }
            if done.is_empty() && Some(s) != r.segments.last() {
                continue; // start at the live edge, like a player
            }
            let url = format!("{base}seg/{}.{}", s.hash, r.container.media_ext());
            let bytes = http.get(&url).send().await?.bytes().await?;
            if Hash::of(&bytes) != s.hash {
                println!("refused reason=hash {url}");
                continue;
            }
            done.insert(s.hash);
            printed += 1;
            let delay = manifest_signer::now_ms() as i64 - m.body.time_ms as i64;
            println!(
                "segment rendition={} seq={} size={} hash={} delay_ms={delay}",
                r.name,
                s.seq,
                bytes.len(),
                s.hash
            );
        }
    }
    Ok(())
}
