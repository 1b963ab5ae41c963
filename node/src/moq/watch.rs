//! `hlswarm moq-watch URL`: follow a stream over MoQ and print each verified segment as it
//! arrives, with its delay since signing: the local clock at verified arrival minus `time_ms`
//! of the first accepted MANIFEST_ROOT that listed the segment (the signer stamps `time_ms`
//! when it signs; compare clocks across machines with care).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::subscribe::{Event, Source, follow};
use crate::cli::MoqWatchArgs;
use crate::metrics::Metrics;

pub async fn run(args: MoqWatchArgs) -> anyhow::Result<ExitCode> {
    let mut source = Source::parse(&args.url, args.stream.as_deref(), args.jwt.as_deref())?;
    source.tls_insecure = args.tls_insecure;
    source.tls_fingerprint = args.tls_fingerprint.clone();
    let stream = source.stream;
    eprintln!("following {stream} at {}", moq_tokio::RedactedUrl::new(&source.url));
    let (tx, mut rx) = mpsc::channel(64);
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(follow(source, tx, metrics, async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|v| *v).await;
    }));
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let (mut segments, mut refused) = (0u64, 0u64);
    let code = loop {
        let ev = tokio::select! {
            _ = crate::shutdown_signal() => break ExitCode::SUCCESS,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                eprintln!("timeout: {segments} verified segments, {refused} refused");
                break ExitCode::FAILURE;
            }
            ev = rx.recv() => ev,
        };
        let Some(ev) = ev else { break ExitCode::FAILURE };
        match ev {
            Event::Connected { epoch } => println!("connected session={epoch}"),
            Event::Broadcast => println!("broadcast {stream}"),
            Event::Manifest { manifest, .. } => println!(
                "manifest seq={} renditions={} delay_ms={}",
                manifest.body.seq,
                manifest.body.renditions.len(),
                manifest_signer::now_ms() as i64 - manifest.body.time_ms as i64
            ),
            Event::Announce { .. } => println!("announce"),
            Event::Segment(v) => {
                segments += 1;
                let delay = manifest_signer::now_ms() as i64 - v.signed_ms as i64;
                println!(
                    "segment rendition={} seq={} size={} init={} hash={} delay_ms={delay}",
                    v.rendition,
                    v.seq,
                    v.bytes.len(),
                    v.init.as_ref().map_or(0, |(_, b)| b.len()),
                    v.hash,
                );
                if args.count.is_some_and(|n| segments >= n) {
                    break ExitCode::SUCCESS;
                }
            }
            Event::Refused { reason, error } => {
                refused += 1;
                println!("refused reason={reason} {error}");
            }
        }
    };
    let _ = stop_tx.send(true);
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), task).await {
        eprintln!("error: {e:#}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}
