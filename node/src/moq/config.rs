//! `[moq]` in the node's config: the MoQ server and the relay the node publishes to.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoqConfig {
    /// Serve every stream as a MoQ broadcast.
    pub enabled: bool,
    /// QUIC/WebTransport listen address (UDP); the WebSocket fallback listens on TCP here too.
    pub listen: SocketAddr,
    /// Also accept MoQ over WebSocket (plain `ws://`, TCP), for clients without QUIC.
    pub websocket: bool,
    /// TLS certificate and key (PEM). Unset: a self-signed certificate for `tls_generate`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Host names of the generated certificate.
    pub tls_generate: Vec<String>,
    /// A moq-relay to publish every stream to (`[moq.relay]`).
    pub relay: Option<RelayConfig>,
}

impl Default for MoqConfig {
    fn default() -> Self {
        MoqConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 4443)),
            websocket: true,
            tls_cert: None,
            tls_key: None,
            tls_generate: vec!["localhost".into()],
            relay: None,
        }
    }
}

/// `[moq.relay]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// `https://relay.example/prefix` (WebTransport, WebSocket fallback), `moqt://` (raw QUIC) or
    /// `http://` (fetches the relay's self-signed certificate fingerprint first). The path is
    /// the relay's auth scope; broadcasts go under it, named by stream id.
    pub url: String,
    /// A JWT the relay grants publishing with; sent as the `jwt` query parameter.
    pub jwt: Option<String>,
    /// Skip TLS verification of the relay (what is published is signed either way).
    pub tls_insecure: bool,
    /// Pin the relay's certificate by SHA-256 fingerprint (hex) instead.
    pub tls_fingerprint: Vec<String>,
}

impl MoqConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(r) = &self.relay {
            let url = url::Url::parse(&r.url).map_err(|e| anyhow::anyhow!("moq.relay.url {:?}: {e}", r.url))?;
            anyhow::ensure!(
                matches!(url.scheme(), "https" | "http" | "moqt" | "moql" | "ws" | "wss"),
                "moq.relay.url must be https://, http://, moqt://, moql://, ws:// or wss://, not {:?}",
                r.url
            );
        }
        Ok(())
    }
}
