//! The one error type of this crate. Every verification failure has its own variant and a stable
//! `code()` string: the test vectors and the web verifier name errors by that code.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while signing, verifying, storing or watching.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Ed25519 signature does not verify over the object's signing input.
    #[error("bad signature on {object}")]
    BadSignature { object: &'static str },
    /// The object is signed for another stream than the one expected.
    #[error("wrong key: object is for stream {found}, expected {expected}")]
    WrongKey { expected: String, found: String },
    /// The sequence number is not above the latest accepted one (replay or rollback).
    #[error("replay: sequence {seq} is not above the latest accepted {latest}")]
    Replay { seq: u64, latest: u64 },
    /// `prev` does not name the previous manifest, or the Merkle log shrank or was rewritten.
    #[error("chain break at sequence {seq}: {reason}")]
    ChainBreak { seq: u64, reason: String },
    /// Two different manifests with one sequence number, both validly signed. Both are kept as evidence.
    #[error("equivocation: two different signed manifests with sequence {seq}")]
    Equivocation { seq: u64 },
    /// Bytes do not hash to what the signed object says.
    #[error("hash mismatch for {what}: expected {expected}, got {actual}")]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A field, list or object is larger than the protocol allows.
    #[error("oversize: {what} is {actual}, limit {limit}")]
    Oversize { what: String, actual: u64, limit: u64 },
    /// The object's `v` is not a version this verifier knows.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u64),
    /// The object's `type` is not the one expected here.
    #[error("wrong object type: expected {expected}, found {found}")]
    WrongType { expected: &'static str, found: String },
    /// The bytes are not the canonical encoding of the object they decode to.
    #[error("not canonical: {0}")]
    NonCanonical(String),
    /// The bytes do not decode to a well-formed object.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A STREAM_ANNOUNCE past its expiry.
    #[error("expired: announce expired at {expires_ms} ms, now {now_ms} ms")]
    Expired { expires_ms: u64, now_ms: u64 },
    /// A Merkle inclusion or consistency proof does not check out.
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// A private key file that others can read.
    #[error("private key {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyPermissions { path: PathBuf, mode: u32 },
    /// A private key file that cannot be parsed.
    #[error("cannot read private key {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    /// The store on disk disagrees with itself (for example the log does not match the signed root).
    #[error("store at {path} is inconsistent: {reason}")]
    Store { path: PathBuf, reason: String },
    /// File system error, with the path it happened on.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The directory watcher could not be set up.
    #[error("watch {path}: {reason}")]
    Watch { path: PathBuf, reason: String },
}

impl Error {
    /// Stable short name of a verification error, used by the test vectors and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadSignature { .. } => "bad_signature",
            Error::WrongKey { .. } => "wrong_key",
            Error::Replay { .. } => "replay",
            Error::ChainBreak { .. } => "chain_break",
            Error::Equivocation { .. } => "equivocation",
            Error::HashMismatch { .. } => "hash_mismatch",
            Error::Oversize { .. } => "oversize",
            Error::UnknownVersion(_) => "unknown_version",
            Error::WrongType { .. } => "wrong_type",
            Error::NonCanonical(_) => "non_canonical",
            Error::Malformed(_) => "malformed",
            Error::Expired { .. } => "expired",
            Error::InvalidProof(_) => "invalid_proof",
            Error::KeyPermissions { .. } => "key_permissions",
            Error::BadKey { .. } => "bad_key",
            Error::Store { .. } => "store",
            Error::Io { .. } => "io",
            Error::Watch { .. } => "watch",
        }
    }

    /// True for errors that say the data was forged, tampered with or replayed (as opposed to local failures).
    pub fn is_verification_failure(&self) -> bool {
        !matches!(
            self,
            Error::Io { .. }
                | Error::Watch { .. }
                | Error::Store { .. }
                | Error::KeyPermissions { .. }
                | Error::BadKey { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn oversize(what: impl Into<String>, actual: usize, limit: usize) -> Error {
        Error::Oversize {
            what: what.into(),
            actual: actual as u64,
            limit: limit as u64,
        }
    }
}
