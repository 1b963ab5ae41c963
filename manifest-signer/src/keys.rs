//! Stream identity: an Ed25519 key pair. `StreamId` is the public key in unpadded base64url
//! (43 characters), so a stream is named by the key that signs it.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::{Error, Result};

/// The public name of a stream: its broadcaster's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub [u8; 32]);

impl StreamId {
    /// The verifying key, if the 32 bytes are a valid curve point.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| Error::Malformed("stream id is not a valid Ed25519 public key".into()))
    }

    /// Short human fingerprint: the first 8 characters of the id.
    pub fn fingerprint(&self) -> String {
        self.to_string()[..8].to_string()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

impl FromStr for StreamId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 43 {
            return Err(Error::Malformed(format!(
                "stream id must be 43 base64url characters, got {}",
                s.len()
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| Error::Malformed(format!("stream id is not base64url: {e}")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Malformed("stream id must decode to 32 bytes".into()))?;
        let id = StreamId(arr);
        // Canonical form only: one id, one spelling.
        if id.to_string() != s {
            return Err(Error::Malformed("stream id is not in canonical base64url form".into()));
        }
        id.verifying_key()?;
        Ok(id)
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A broadcaster's signing key.
pub struct StreamKey {
    signing: SigningKey,
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey({})", self.stream_id())
    }
}

impl StreamKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::BadKey {
            path: "<os rng>".into(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// The key with this 32-byte seed (RFC 8032 private key). Used by the test vectors.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        StreamKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn stream_id(&self) -> StreamId {
        StreamId(self.signing.verifying_key().to_bytes())
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// Load a PKCS#8 PEM private key, refusing a file that group or others can read.
    pub fn load(path: &Path) -> Result<Self> {
        check_private_mode(path)?;
        let pem = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| Error::BadKey {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(StreamKey { signing })
    }

    /// Write the key as PKCS#8 v2 PEM (RFC 8410; keys from `openssl genpkey -algorithm ed25519` also load), mode 0600.
    /// Refuses to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let pem = self.signing.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::BadKey {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(Error::io("create", path))?;
        file.write_all(pem.as_bytes()).map_err(Error::io("write", path))?;
        file.sync_all().map_err(Error::io("sync", path))?;
        Ok(())
    }

    /// Load the key at `path`, or create one there if there is none. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool)> {
        match std::fs::metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path)?;
                Ok((key, true))
            }
            Err(e) => Err(Error::io("stat", path)(e)),
        }
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(Error::io("stat", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::KeyPermissions {
            path: path.into(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_round_trips_and_rejects_other_spellings() {
        let key = StreamKey::from_seed([7; 32]);
        let id = key.stream_id();
        let s = id.to_string();
        assert_eq!(s.len(), 43);
        assert_eq!(s.parse::<StreamId>().unwrap(), id);
        assert!(format!("{s}=").parse::<StreamId>().is_err());
        assert!(s[..42].parse::<StreamId>().is_err());
        assert!(s.replace(['-', '_'], "+").parse::<StreamId>().is_err() || !s.contains(['-', '_']));
    }

    #[test]
    fn key_file_is_private_and_group_readable_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/stream.key");
        let (key, created) = StreamKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = StreamKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.stream_id(), key.stream_id());
        assert!(key.save(&path).is_err(), "save must not overwrite a key");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = StreamKey::load(&path).unwrap_err();
        assert_eq!(err.code(), "key_permissions");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(StreamKey::load(&path).unwrap_err().code(), "bad_key");
    }
}
