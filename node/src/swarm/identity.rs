//! The node's libp2p identity: an Ed25519 key pair of its own, kept in DATA_DIR/keys/node.key
//! (libp2p's protobuf encoding, mode 0600). It names the node in the swarm and is unrelated
//! to any stream key: losing it only changes the node's peer id.

use std::path::Path;

use anyhow::Context;
use libp2p::identity::Keypair;

pub const NODE_KEY_FILE: &str = "node.key";

/// Load the node key, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Keypair> {
    let path = data_dir.join("keys").join(NODE_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    anyhow::bail!(
                        "node key {} is readable by group or others (mode {mode:o}); run `chmod 600` on it",
                        path.display()
                    );
                }
            }
            return Keypair::from_protobuf_encoding(&bytes)
                .with_context(|| format!("{} is not a libp2p key; move it away to get a new one", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let key = Keypair::generate_ed25519();
    let bytes = key.to_protobuf_encoding().context("encoding the node key")?;
    crate::create_private_file(&path, &bytes)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_node_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
    }
}
