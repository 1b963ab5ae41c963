//! `hlswarm keygen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use manifest_signer::StreamKey;

pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("stream.key")
}

pub fn run(data_dir: &Path, args: crate::cli::KeygenArgs) -> anyhow::Result<ExitCode> {
    let path = args.key.unwrap_or_else(|| default_key_path(data_dir));
    if path.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite a stream key (move it away first)",
            path.display()
        );
    }
    let key = StreamKey::generate()?;
    key.save(&path).with_context(|| format!("writing {}", path.display()))?;
    println!("stream id   {}", key.stream_id());
    println!(
        "private key {} (mode 0600; back it up: it is the stream's identity)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
