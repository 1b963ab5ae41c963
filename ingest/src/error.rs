//! The crate's error type.

/// Everything that can go wrong in ingest: parsing, muxing, RTMP sessions and I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input ended before a structure was complete.
    #[error("truncated {what}: need {need} more bytes")]
    Truncated {
        /// What was being parsed.
        what: &'static str,
        /// Bytes missing (at least).
        need: usize,
    },
    /// Input is syntactically wrong.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Input is valid but uses a feature this crate does not handle.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// The feature area.
        what: &'static str,
        /// The unsupported value.
        detail: String,
    },
    /// A configured bound was exceeded.
    #[error("limit exceeded: {what} ({got} > {max})")]
    Limit {
        /// The bounded quantity.
        what: &'static str,
        /// The value seen.
        got: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The RTMP handshake or session failed (including a caught panic inside rml_rtmp).
    #[error("rtmp: {0}")]
    Rtmp(String),
    /// The peer did not send anything in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The configuration is unusable.
    #[error("config: {0}")]
    Config(String),
    /// ffmpeg, needed by the ABR ladder, is missing, unusable or failed.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    /// Socket errors.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            what,
            detail: detail.into(),
        }
    }
}
