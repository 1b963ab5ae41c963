//! The hlswarm node: command line, and the commands it runs.

pub mod catalog;
pub mod cli;
pub mod config;
mod ending;
mod http;
mod keygen;
pub mod lag;
pub mod logging;
pub mod metrics;
pub mod moq;
pub mod parts;
pub mod replica;
mod rtmps;
mod run;
mod seed;
mod sign;
pub mod sources;
pub mod swarm;
mod tracker;
mod verify;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Run one command to completion.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Command::Tracker(args) = &cli.command {
        rt.worker_threads(usize::from(args.threads));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(&cli.data_dir, args).await,
            Command::Seed(args) => run::seed(&cli.data_dir, args).await,
            Command::Keygen(args) => keygen::run(&cli.data_dir, args),
            Command::Sign(args) => sign::run(&cli.data_dir, args).await,
            Command::Verify(args) => verify::run(&cli.data_dir, args).await,
            Command::Tracker(args) => tracker::run(args).await,
            Command::MoqWatch(args) => moq::watch::run(args).await,
        }
    })
}

/// Create `path` (and its directory) with mode 0600 and `bytes`, synced; never overwrites: for
/// secrets the node generates once (publish secret, node key).
pub(crate) fn create_private_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Shutdown signal: SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the node");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
