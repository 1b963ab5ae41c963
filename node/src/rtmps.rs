//! RTMPS: the certificate the RTMP-over-TLS listener presents. From `[rtmp] tls_cert` and
//! `tls_key` (PEM files) when given, otherwise a self-signed one generated once into
//! `DATA_DIR/keys/rtmps.crt` + `rtmps.key` (0600) and reused, so its fingerprint stays the
//! same across restarts. The TLS itself runs in the ingest crate (`ingest::serve_listeners`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ingest::rustls;
use rustls::crypto::hash::HashAlgorithm;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::RtmpConfig;

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// Names the generated certificate is made out to.
const GENERATED_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A ready TLS acceptor and what to print about its certificate.
pub struct Tls {
    pub acceptor: ingest::TlsAcceptor,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub fingerprint: String,
    /// True when the certificate is the node's own self-signed one.
    pub self_signed: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

/// Where the generated certificate and its key live.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let keys = data_dir.join("keys");
    (keys.join("rtmps.crt"), keys.join("rtmps.key"))
}

/// The acceptor for `cfg`'s certificate, generating the self-signed one if needed.
pub fn load(cfg: &RtmpConfig, data_dir: &Path) -> anyhow::Result<Tls> {
    let (cert_path, key_path, self_signed) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        (None, None) => {
            let (c, k) = generated_paths(data_dir);
            generate_if_missing(&c, &k)?;
            (c, k, true)
        }
        _ => anyhow::bail!("rtmp.tls_cert and rtmp.tls_key go together"),
    };
    let chain = CertificateDer::pem_slice_iter(&read_bounded(&cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate chain: {e}", cert_path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{}: no certificate in it", cert_path.display());
    let key = PrivateKeyDer::from_pem_slice(&read_bounded(&key_path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", key_path.display()))?;
    let fingerprint = sha256_hex(&chain[0])?;
    let provider = moq_tokio::crypto::provider();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("the RTMPS certificate {} and key do not fit", cert_path.display()))?;
    Ok(Tls {
        acceptor: ingest::TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        self_signed,
    })
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_PEM_BYTES,
        "{} is larger than {MAX_PEM_BYTES} bytes",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Makes the self-signed certificate and key unless both exist; one without the other is an
/// error (never overwritten: delete the one left to start afresh).
fn generate_if_missing(cert: &Path, key: &Path) -> anyhow::Result<()> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(()),
        (false, false) => {}
        _ => anyhow::bail!(
            "only one of {} and {} exists; delete it to generate a new RTMPS certificate",
            cert.display(),
            key.display()
        ),
    }
    let names: Vec<String> = GENERATED_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let rcgen::CertifiedKey { cert: c, signing_key } =
        rcgen::generate_simple_self_signed(names).context("generating the RTMPS certificate")?;
    crate::create_private_file(key, pem("PRIVATE KEY", &signing_key.serialize_der()).as_bytes())?;
    std::fs::write(cert, pem("CERTIFICATE", c.der())).with_context(|| format!("writing {}", cert.display()))?;
    Ok(())
}

/// RFC 7468 text: base64 in 64-character lines between BEGIN/END labels.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SHA-256 with the TLS provider's own hash (no extra crate), lowercase hex.
fn sha256_hex(der: &[u8]) -> anyhow::Result<String> {
    let provider = moq_tokio::crypto::provider();
    let hash = provider
        .cipher_suites
        .iter()
        .find_map(|s| {
            let h = s.tls13()?.common.hash_provider;
            (h.algorithm() == HashAlgorithm::SHA256).then_some(h)
        })
        .context("the TLS provider has no SHA-256")?;
    Ok(hash.hash(der).as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_its_fingerprint_is_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = RtmpConfig::default();
        let first = load(&cfg, dir.path()).expect("generates");
        assert!(first.self_signed);
        assert_eq!(first.fingerprint.len(), 64);
        let again = load(&cfg, dir.path()).expect("loads the kept one");
        assert_eq!(first.fingerprint, again.fingerprint);
        let (cert, key) = generated_paths(dir.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // The files work as configured files too (what an operator would copy).
        let files = RtmpConfig {
            tls_cert: Some(cert),
            tls_key: Some(key.clone()),
            ..RtmpConfig::default()
        };
        let from_files = load(&files, dir.path()).expect("loads from files");
        assert!(!from_files.self_signed);
        assert_eq!(from_files.fingerprint, first.fingerprint);
        // A half-present pair is refused, never overwritten.
        std::fs::remove_file(&key).expect("rm");
        let err = load(&cfg, dir.path()).expect_err("refused");
        assert!(err.to_string().contains("only one of"), "{err}");
    }

    #[test]
    fn bad_files_and_half_configs_are_refused_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").expect("write");
        let cfg = RtmpConfig {
            tls_cert: Some(junk.clone()),
            tls_key: Some(junk.clone()),
            ..RtmpConfig::default()
        };
        let err = format!("{:#}", load(&cfg, dir.path()).expect_err("refused"));
        assert!(err.contains("junk.pem"), "{err}");
        let half = RtmpConfig {
            tls_cert: Some(junk),
            ..RtmpConfig::default()
        };
        let err = load(&half, dir.path()).expect_err("refused").to_string();
        assert!(err.contains("go together"), "{err}");
    }
}
