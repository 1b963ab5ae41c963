//! `hlswarm run`: the whole node. RTMP ingest in; each finished segment is hashed, stored and
//! signed into a new MANIFEST_ROOT before the next one is taken; the HTTP origin serves what is
//! signed, with the watch page and the dashboard.
//!
//! Tasks: `ingest` (RTMP), `http` (origin), and the signer loop on this task. If `http` or
//! `ingest` stops on its own, the node logs it and exits non-zero. On SIGINT/SIGTERM the ingest
//! finishes and hands over the current segment, the loop signs it, then HTTP drains and stops.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use manifest_signer::signer::{SignerConfig, StreamSigner};
use manifest_signer::{Hints, StreamKey};
use tokio::sync::{mpsc, watch};

use crate::catalog::Catalog;
use crate::cli::{RunArgs, SeedArgs};
use crate::config::Config;
use crate::ending::EndPolicy;
use crate::http::{self, AppState, NodeInfo};
use crate::keygen::default_key_path;
use crate::metrics::Metrics;
use crate::replica::Replica;
use crate::swarm::{Follow, Misbehave};

mod signing;
use signing::Signing;

/// The one stream name the ingest maps the publish secret to.
const STREAM: &str = "main";
const ANNOUNCE_TTL_MS: u64 = 60 * 60 * 1000;

pub async fn run(data_dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    node(data_dir, args, Vec::new(), Vec::new(), false).await
}

/// `hlswarm seed`: the same node, following other streams; no ingest and no signing unless
/// `--with-rtmp`.
pub async fn seed(data_dir: &Path, args: SeedArgs) -> anyhow::Result<ExitCode> {
    let mut run = args.run;
    if !args.with_rtmp {
        run.no_rtmp = true;
    }
    let mut follows = crate::seed::resolve(&args.sources).await?;
    let moq_sources = crate::moq::gateway::sources(&args.moq_source, args.moq_source_insecure, &mut follows)?;
    node(data_dir, run, follows, moq_sources, !args.with_rtmp).await
}

async fn node(
    data_dir: &Path,
    args: RunArgs,
    follows: Vec<Follow>,
    moq_sources: Vec<crate::moq::subscribe::Source>,
    seed_only: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(data_dir, &args)?;
    // Held until the node exits (the kernel drops it even on SIGKILL).
    let _lock = lock_data_dir(data_dir)?;
    let misbehave = match &args.misbehave {
        Some(m) => Misbehave::parse(m).context("--misbehave")?,
        None => Misbehave::default(),
    };
    anyhow::ensure!(
        follows.is_empty()
            || cfg.swarm.enabled
            || !moq_sources.is_empty()
            || follows.iter().any(|f| !f.http.is_empty()),
        "seeding needs the swarm or an HTTP origin to follow (a watch URL or a share bundle)"
    );
    let ladder = ingest::parse_ladder(&cfg.rtmp.ladder).context("--ladder")?;
    if cfg.rtmp.enabled {
        ingest::check_ladder(&ladder, &cfg.rtmp.ffmpeg)
            .await
            .context("--ladder")?;
    }
    // LL-HLS parts: signed by the origin of an fMP4 stream.
    let part_ms = Some(cfg.rtmp.part_ms).filter(|&ms| ms > 0 && !seed_only && !cfg.rtmp.ts && cfg.rtmp.enabled);
    let mut signer = if seed_only {
        None
    } else {
        let key_path = cfg.stream.key.clone().unwrap_or_else(|| default_key_path(data_dir));
        let (key, created) = StreamKey::load_or_create(&key_path)?;
        if created {
            eprintln!(
                "created stream key {} (mode 0600; back it up: it is the stream's identity)",
                key_path.display()
            );
        }
        let signer_cfg = SignerConfig {
            window: cfg.stream.window,
            retain_segments: (cfg.stream.retain > 0).then_some(cfg.stream.retain),
            target_duration: cfg.rtmp.segment_seconds,
            parts: part_ms.is_some(),
        };
        Some(StreamSigner::open(key, data_dir, signer_cfg).context("opening the stream store")?)
    };
    let stream_id = signer.as_ref().map(StreamSigner::stream_id);

    let metrics = Arc::new(Metrics::default());
    let catalog = Arc::new(Catalog::new(
        data_dir,
        cfg.http.cache_mib * 1024 * 1024,
        metrics.clone(),
    ));
    let loaded = catalog.load_from_disk();
    tracing::info!(streams = loaded, "loaded signed streams from the data directory");
    let replica = Arc::new(Replica::new(data_dir, catalog.clone(), cfg.stream.retain));

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        tracing::info!("stopping: finishing the current segment");
        let _ = stop_tx.send(true);
    });

    // Bind everything before printing, so what is printed is what works.
    let rtmp = match cfg.rtmp.enabled {
        true => Some(
            tokio::net::TcpListener::bind(cfg.rtmp.listen)
                .await
                .with_context(|| format!("binding RTMP on {}", cfg.rtmp.listen))?,
        ),
        false => None,
    };
    let rtmps = match (cfg.rtmp.enabled, cfg.rtmp.rtmps_listen) {
        (true, Some(addr)) => {
            let tls = crate::rtmps::load(&cfg.rtmp, data_dir).context("RTMPS certificate")?;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding RTMPS on {addr}"))?;
            Some((l, tls))
        }
        _ => None,
    };
    let http_listener = match cfg.http.enabled {
        true => Some(
            tokio::net::TcpListener::bind(cfg.http.listen)
                .await
                .with_context(|| format!("binding HTTP on {}", cfg.http.listen))?,
        ),
        false => None,
    };
    let rtmp_addr = rtmp.as_ref().map(|l| l.local_addr()).transpose()?;
    let http_addr = http_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let rtmp_url = rtmp_addr.map(|a| format!("rtmp://{}:{}/live", printable_host(a), a.port()));
    let rtmps_addr = rtmps.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let http_base = http_addr.and_then(|a| cfg.http_base(a));
    let tracker =
        (cfg.tracker.enabled && http_addr.is_some()).then(|| tracker::Tracker::new(cfg.tracker.limits.clone()));
    let swarm = match cfg.swarm.enabled {
        true => {
            let key = crate::swarm::identity::load_or_create(data_dir)?;
            Some(crate::swarm::start(&cfg.swarm, key, replica.clone(), stream_id, follows.clone(), misbehave).await?)
        }
        false => None,
    };
    // MoQ sources (`seed --moq-source`): MoQ in, verified, into the replica (node/src/moq/gateway.rs).
    for src in moq_sources {
        crate::moq::gateway::spawn(src, replica.clone(), metrics.clone(), wait_true(stop_rx.clone()));
    }
    if swarm.is_none() {
        // Without the swarm, followed streams are mirrored from their HTTP origins.
        for f in follows.iter().filter(|f| !f.http.is_empty()) {
            crate::seed::spawn_http_mirror(
                replica.clone(),
                f.clone(),
                Duration::from_secs(cfg.swarm.ban_seconds),
                wait_true(stop_rx.clone()),
            );
        }
    }
    let hints = Hints {
        http: http_base.iter().cloned().collect(),
        libp2p: swarm.as_ref().map(|s| s.hint_addrs()).unwrap_or_default(),
        trackers: match (&tracker, &http_base) {
            (Some(_), Some(b)) => Config::tracker_url(b).into_iter().collect(),
            _ => Vec::new(),
        },
        ..Hints::default()
    };

    // MoQ (node/src/moq): bound here so the banner prints only what works.
    let (moq_stop_tx, moq_stop_rx) = watch::channel(false);
    let (moq, mut moq_task) = match cfg.moq.enabled {
        true => {
            let (r, t) = crate::moq::start(&cfg.moq, catalog.clone(), metrics.clone(), moq_stop_rx).await?;
            (Some(r), Some(t))
        }
        false => (None, None),
    };

    let secret = match (&cfg.rtmp.stream_key, rtmp.is_some()) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some(publish_secret(data_dir)?),
        (None, false) => None,
    };
    println!("hlswarm node running");
    if let Some(id) = stream_id {
        println!("  stream id   {id}");
    }
    for f in &follows {
        println!("  seeding     {}", f.stream);
    }
    if let (Some(url), Some(secret)) = (&rtmp_url, &secret) {
        println!("  OBS server  {url}");
        if let (Some(a), Some((_, tls))) = (rtmps_addr, &rtmps) {
            println!("  OBS (TLS)   rtmps://{}:{}/live", printable_host(a), a.port());
            let kind = if tls.self_signed { "self-signed, " } else { "" };
            println!("  rtmps cert  {kind}sha256 {}", tls.fingerprint);
        }
        println!("  stream key  {secret}");
    }
    if let Some(a) = http_addr {
        let base = http_base
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}/", printable_host(a), a.port()));
        for id in stream_id.iter().chain(follows.iter().map(|f| &f.stream)) {
            println!("  watch       {base}watch/{id}");
        }
        println!("  dashboard   {base}");
        for id in stream_id.iter().chain(follows.iter().map(|f| &f.stream)) {
            println!("  HLS         {base}streams/{id}/master.m3u8");
        }
        if let (Some(_), Some(url)) = (&tracker, Config::tracker_url(&base)) {
            println!("  tracker     {url}");
        }
    }
    if let Some(Some(a)) = moq.as_ref().map(|m| m.quic) {
        for id in stream_id.iter().chain(follows.iter().map(|f| &f.stream)) {
            println!("  moq         https://{}:{}/{id}", printable_host(a), a.port());
        }
        for f in moq.iter().flat_map(|m| &m.fingerprints) {
            println!("  moq cert    sha256 {f}");
        }
    }
    if let Some(a) = rtmp_addr {
        println!("rtmp listening on {a}");
    }
    if let Some(a) = rtmps_addr {
        println!("rtmps listening on {a}");
    }
    if let Some(a) = http_addr {
        println!("http listening on {a}");
    }
    if let Some(s) = &swarm {
        println!("p2p peer id {}", s.peer_id);
        for a in s.hint_addrs() {
            let relayed = a.contains("/p2p-circuit/");
            println!(
                "p2p {} {a}",
                if relayed { "reachable via relay" } else { "listening on" }
            );
        }
    }
    if let Some(m) = &moq {
        if let Some(a) = m.quic {
            println!("moq listening on {a}");
        }
        if let Some(a) = m.websocket {
            println!("moq websocket listening on {a}");
        }
    }

    // HTTP stops only after the signer loop has signed the last segment.
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let mut http_task = match http_listener {
        Some(l) => {
            let state = AppState {
                catalog: catalog.clone(),
                node: Arc::new(NodeInfo {
                    rtmp_url,
                    p2p: hints.libp2p.clone(),
                    trusted_proxies: cfg.http.trusted_proxies.clone(),
                }),
                started: Instant::now(),
                tracker: tracker.clone(),
            };
            let stop = wait_true(http_stop_rx);
            let expiry = tracker.clone().map(|t| tokio::spawn(t.run_expiry()));
            Some(tokio::spawn(async move {
                let res = http::serve(l, state, stop).await;
                if let Some(e) = expiry {
                    e.abort();
                }
                res
            }))
        }
        None => None,
    };

    let (swarm_stop_tx, swarm_stop_rx) = watch::channel(false);
    let mut swarm_task = swarm.map(|s| tokio::spawn(s.run(wait_true(swarm_stop_rx))));

    // After a restart the media timeline goes on from what was signed before.
    let media_time = signer.as_ref().map(StreamSigner::media_time_ms);
    let (tx, mut rx) = mpsc::channel(16);
    let mut ingest_task = match (rtmp, secret) {
        (Some(listener), Some(secret)) => {
            let ingest_cfg = ingest::IngestConfig {
                keys: vec![ingest::StreamKey {
                    key: secret,
                    stream: STREAM.into(),
                }],
                target_duration: Duration::from_secs(cfg.rtmp.segment_seconds),
                part_target: part_ms.map(Duration::from_millis),
                container: if cfg.rtmp.ts {
                    ingest::Container::Ts
                } else {
                    ingest::Container::Fmp4
                },
                ladder,
                ffmpeg: cfg.rtmp.ffmpeg.clone(),
                resume_ms: media_time.map(|ms| (STREAM.to_owned(), ms)).into_iter().collect(),
                max_connections: cfg.rtmp.max_connections,
                max_connections_per_address: cfg.rtmp.max_connections_per_address,
                handshake_timeout: Duration::from_millis(cfg.rtmp.handshake_timeout_ms),
                stats: metrics.ingest.clone(),
                ..ingest::IngestConfig::default()
            };
            let listeners = ingest::Listeners {
                rtmp: Some(listener),
                rtmps: rtmps.map(|(l, tls)| (l, tls.acceptor)),
            };
            Some(tokio::spawn(ingest::serve_listeners(
                listeners,
                ingest_cfg,
                tx,
                wait_true(stop_rx.clone()),
            )))
        }
        _ => {
            // No ingest: nothing will send; the loop below ends at the shutdown signal.
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                wait_true(stop).await;
                drop(tx);
            });
            None
        }
    };

    let grace = Duration::from_secs(cfg.stream.end_grace_seconds);
    let mut node = signer.as_mut().map(|signer| Signing {
        ending: EndPolicy::new(grace, stream_open(signer), std::time::Instant::now()),
        grace,
        signer,
        catalog: &catalog,
        title: cfg.stream.title.clone(),
        tip: cfg.stream.tip.clone(),
        hints,
        announced: None,
        announced_at: 0,
        clock: None,
        gaps: HashSet::new(),
        pending: None,
        // PART-TARGET: parts close by 1.1 times the target at the latest (ingest's part rule).
        part_target_us: part_ms.map(|ms| ms * 1100),
        part_inits: HashMap::new(),
        with_audio: None,
    });
    if let Some(n) = &mut node {
        n.announce_if_needed(true);
    }
    let mut failed = false;
    loop {
        let end_at = node.as_ref().and_then(|n| n.ending.deadline());
        let flush_at = node.as_ref().and_then(|n| n.pending.as_ref().map(|p| p.1));
        tokio::select! {
            () = sleep_opt(end_at) => {
                if let Some(n) = &mut node {
                    n.on_deadline();
                }
            }
            () = sleep_opt(flush_at) => {
                if let Some(n) = &mut node {
                    n.flush_pending();
                }
            }
            event = rx.recv() => match (event, &mut node) {
                (Some(event), Some(n)) => n.handle(event),
                (Some(_), None) => tracing::warn!("segment from ingest without a signer: dropped"),
                (None, _) => break,
            },
            res = join_opt(&mut swarm_task) => {
                tracing::error!(task = "swarm", result = ?res.map(|r| r.map_err(|e| e.to_string())), "task stopped unexpectedly");
                swarm_task = None;
                failed = true;
                break;
            }
            res = join_opt(&mut http_task) => {
                tracing::error!(task = "http", result = ?res.map(|r| r.map_err(|e| e.to_string())), "task stopped unexpectedly");
                http_task = None;
                failed = true;
                break;
            }
            res = join_opt(&mut moq_task), if moq_task.is_some() => {
                tracing::error!(task = "moq", result = ?res.map(|r| r.map_err(|e| format!("{e:#}"))), "task stopped unexpectedly");
                moq_task = None;
                failed = true;
                break;
            }
            res = join_opt(&mut ingest_task), if ingest_task.is_some() => {
                ingest_task = None;
                match res {
                    Ok(Ok(())) => {}
                    other => {
                        tracing::error!(task = "ingest", result = ?other.map(|r| r.map_err(|e| e.to_string())), "task stopped unexpectedly");
                        failed = true;
                        break;
                    }
                }
            }
        }
    }
    // A source segment still waiting for its audio is signed before the node stops.
    if let Some(n) = &mut node {
        n.flush_pending();
    }
    if let Some(t) = ingest_task {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "RTMP ingest failed");
                failed = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "RTMP ingest task panicked");
                failed = true;
            }
        }
    }
    let _ = swarm_stop_tx.send(true);
    if let Some(t) = swarm_task
        && tokio::time::timeout(Duration::from_secs(5), t).await.is_err()
    {
        tracing::warn!("swarm did not stop within 5 s");
    }
    let _ = moq_stop_tx.send(true);
    if let Some(t) = moq_task
        && let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), t).await
    {
        tracing::warn!(error = %e, "MoQ stopped with an error");
    }
    let _ = http_stop_tx.send(true);
    if let Some(t) = http_task {
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(other) => {
                tracing::warn!(result = ?other.map(|r| r.map_err(|e| e.to_string())), "HTTP stopped with an error")
            }
            Err(_) => tracing::warn!("HTTP did not drain within 10 s"),
        }
    }
    tracing::info!("stopped");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Sleep until `at`; pending forever when there is none.
async fn sleep_opt(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The stored stream has segments and is not ended: a restart mid-broadcast.
fn stream_open(signer: &StreamSigner) -> bool {
    signer
        .latest()
        .is_some_and(|m| m.body.renditions.iter().any(|r| !r.ended && !r.segments.is_empty()))
}

/// Await an optional task; pending forever when there is none.
async fn join_opt<T>(task: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

fn printable_host(a: std::net::SocketAddr) -> String {
    match a.ip() {
        ip if ip.is_unspecified() => "localhost".into(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

/// The publish secret OBS uses as its stream key: generated once, kept 0600 beside the keys.
/// One node per data directory: two would sign, prune and rewrite the same files.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another hlswarm node is using the data directory {}; give each node its own --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn publish_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("keys").join("publish.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    crate::create_private_file(&path, secret.as_bytes())?;
    Ok(secret)
}
