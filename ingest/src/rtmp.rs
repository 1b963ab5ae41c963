//! The only place that calls into rml_rtmp. rml_rtmp 0.8 is unmaintained and has reachable
//! panics on malformed input (for example `@setDataFrame` with no arguments indexes an empty
//! Vec, and several chunk-header paths subtract without checks), so every call runs inside
//! `catch_unwind`. A caught panic becomes [`Error::Rtmp`] and the session is poisoned: the
//! caller must close that one connection.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionResult};

use crate::error::{Error, Result};

fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".to_owned());
        Error::Rtmp(format!("rml_rtmp panicked in {what}: {msg}"))
    })
}

/// Outcome of feeding bytes to the handshake.
#[derive(Debug)]
pub(crate) enum HandshakeStep {
    /// Send these bytes and keep reading.
    InProgress(Vec<u8>),
    /// Send `response`; `remaining` are the first RTMP chunk bytes.
    Done { response: Vec<u8>, remaining: Vec<u8> },
}

/// Server side of the RTMP handshake.
pub(crate) struct ServerHandshake {
    inner: Option<Handshake>,
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake").finish_non_exhaustive()
    }
}

impl ServerHandshake {
    pub(crate) fn new() -> Self {
        Self {
            inner: Some(Handshake::new(PeerType::Server)),
        }
    }

    pub(crate) fn process(&mut self, bytes: &[u8]) -> Result<HandshakeStep> {
        let hs = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::Rtmp("handshake poisoned".into()))?;
        let result = guarded("handshake", || hs.process_bytes(bytes));
        match result {
            Ok(Ok(HandshakeProcessResult::InProgress { response_bytes })) => {
                Ok(HandshakeStep::InProgress(response_bytes))
            }
            Ok(Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            })) => Ok(HandshakeStep::Done {
                response: response_bytes,
                remaining: remaining_bytes,
            }),
            Ok(Err(e)) => Err(Error::Rtmp(format!("handshake: {e}"))),
            Err(e) => {
                self.inner = None;
                Err(e)
            }
        }
    }
}

/// A `ServerSession` that turns panics into errors.
pub(crate) struct Session {
    inner: Option<ServerSession>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("poisoned", &self.inner.is_none())
            .finish()
    }
}

impl Session {
    pub(crate) fn new() -> Result<(Self, Vec<ServerSessionResult>)> {
        let (session, results) = guarded("ServerSession::new", || ServerSession::new(ServerSessionConfig::new()))?
            .map_err(|e| Error::Rtmp(e.to_string()))?;
        Ok((Self { inner: Some(session) }, results))
    }

    fn call<T, E: std::fmt::Display>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut ServerSession) -> std::result::Result<T, E>,
    ) -> Result<T> {
        let session = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::Rtmp("session poisoned by an earlier panic".into()))?;
        match guarded(what, || f(session)) {
            Ok(r) => r.map_err(|e| Error::Rtmp(format!("{what}: {e}"))),
            Err(e) => {
                self.inner = None;
                Err(e)
            }
        }
    }

    pub(crate) fn handle_input(&mut self, bytes: &[u8]) -> Result<Vec<ServerSessionResult>> {
        self.call("handle_input", |s| s.handle_input(bytes))
    }

    pub(crate) fn accept(&mut self, request_id: u32) -> Result<Vec<ServerSessionResult>> {
        self.call("accept_request", |s| s.accept_request(request_id))
    }

    pub(crate) fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<Vec<ServerSessionResult>> {
        self.call("reject_request", |s| s.reject_request(request_id, code, description))
    }
}
